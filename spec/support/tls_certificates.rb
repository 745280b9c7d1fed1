# frozen_string_literal: true

require "fileutils"
require "open3"
require "tmpdir"

# A CA, a server certificate for localhost and 127.0.0.1 signed by it, a
# client certificate signed by it, and a second CA that signed nothing the
# server shows (for "untrusted"), made with the openssl tool in a temp folder.
class TLSCertificates
  attr_reader :dir

  def initialize
    @dir = Dir.mktmpdir("redis_ipc_tls")
    make_ca("ca")
    make_ca("other_ca")
    make_signed("server", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1")
    make_signed("client", "redis_ipc client", "extendedKeyUsage=clientAuth")
    # ca_path wants a folder of certificates named by their subject hash.
    FileUtils.mkdir_p(ca_path)
    FileUtils.cp(ca_file, ca_path)
    openssl("rehash", ca_path)
  end

  def path(name) = File.join(dir, name)
  def ca_file = path("ca.crt")
  def ca_path = path("ca_dir")
  def other_ca_file = path("other_ca.crt")
  def server_cert = path("server.crt")
  def server_key = path("server.key")
  def client_cert = path("client.crt")
  def client_key = path("client.key")

  def cleanup
    FileUtils.rm_rf(dir)
  end

  private

  def openssl(*args)
    out, status = Open3.capture2e({ "LD_PRELOAD" => nil }, "openssl", *args)
    raise "openssl #{args.first} failed: #{out}" unless status.success?
  end

  def make_ca(name)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=redis_ipc test #{name}",
            "-keyout", path("#{name}.key"), "-out", path("#{name}.crt"))
  end

  def make_signed(name, common_name, extension)
    File.write(path("#{name}.ext"), "#{extension}\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=#{common_name}",
            "-keyout", path("#{name}.key"), "-out", path("#{name}.csr"))
    openssl("x509", "-req", "-in", path("#{name}.csr"), "-CA", ca_file, "-CAkey", path("ca.key"), "-CAcreateserial",
            "-days", "2", "-extfile", path("#{name}.ext"), "-out", path("#{name}.crt"))
  end
end
