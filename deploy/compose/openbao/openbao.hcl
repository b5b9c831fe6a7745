# OpenBao (Vault-compatible) in server mode with file storage on the `openbao` volume.
# TLS is not needed inside the internal compose network; use a listener certificate if the
# network is shared. Initialise and unseal once with ./init.sh; unseal again after each restart.
ui = false
disable_mlock = false

storage "file" {
  path = "/openbao/file"
}

listener "tcp" {
  address     = "0.0.0.0:8200"
  tls_disable = true
}

api_addr = "http://openbao:8200"
