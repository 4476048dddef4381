# OpenBao / Vault server, one node of an HA raft cluster (three or five nodes).
# Copy per node and change node_id, api_addr, cluster_addr and the TLS files.

storage "raft" {
  path    = "/var/lib/openbao/data"
  node_id = "bao-1"

  retry_join {
    leader_api_addr     = "https://bao-2.internal:8200"
    leader_ca_cert_file = "/etc/openbao/tls/ca.pem"
  }
  retry_join {
    leader_api_addr     = "https://bao-3.internal:8200"
    leader_ca_cert_file = "/etc/openbao/tls/ca.pem"
  }
}

listener "tcp" {
  address       = "0.0.0.0:8200"
  tls_cert_file = "/etc/openbao/tls/server.pem"
  tls_key_file  = "/etc/openbao/tls/server-key.pem"
}

api_addr     = "https://bao-1.internal:8200"
cluster_addr = "https://bao-1.internal:8201"

# The azsidecar secrets-engine plugin is installed here
# (`azsidecar plugin install --plugin-dir /etc/openbao/plugins`).
plugin_directory = "/etc/openbao/plugins"

ui            = false
disable_mlock = true
