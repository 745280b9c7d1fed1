# frozen_string_literal: true

require "fileutils"
require "socket"
require "tmpdir"

# A private redis-server for the suite: on a unix socket and a free TCP port
# in a temp folder, started before the specs and stopped after them. With
# REDIS_URL set, that server is used instead.
#
# With `tls:` (TLSCertificates) it also listens for TLS on tls_port, and
# `client_certs: true` makes it demand a client certificate. Under
# REDIS_IPC_SPEC_TLS=1 every server of the suite has TLS and `url` is the
# rediss:// one, so the whole suite talks TLS (spec_helper trusts the CA
# through SSL_CERT_FILE).
class RedisServer
  attr_reader :dir, :socket, :port, :tls_port, :pid

  def self.binary
    ENV.fetch("REDIS_SERVER", "redis-server")
  end

  def self.suite_tls? = !ENV["REDIS_IPC_SPEC_TLS"].to_s.empty? && ENV["REDIS_IPC_SPEC_TLS"] != "0"

  # `args:` are more redis-server arguments (a replica's --replicaof, a cluster node's settings).
  def initialize(tls: (self.class.suite_tls? ? $tls_certificates : nil), client_certs: false, args: [])
    @args = args
    @dir = Dir.mktmpdir("redis_ipc_spec")
    @socket = File.join(@dir, "redis.sock")
    @port = free_port
    @tls = tls
    @client_certs = client_certs
    @tls_port = free_port if tls
  end

  def url = @tls && self.class.suite_tls? ? tls_url : "unix://#{socket}"
  def tcp_url = "redis://127.0.0.1:#{port}"
  def tls_url = "rediss://127.0.0.1:#{tls_port}"

  def start
    tls_args = if @tls
                 ["--tls-port", tls_port.to_s, "--tls-cert-file", @tls.server_cert, "--tls-key-file", @tls.server_key,
                  "--tls-ca-cert-file", @tls.ca_file, "--tls-auth-clients", @client_certs ? "yes" : "no"]
               else
                 []
               end
    # The sanitizer run preloads libasan for Ruby; redis-server needs none of it.
    @pid = Process.spawn({ "LD_PRELOAD" => nil }, self.class.binary, "--port", port.to_s, "--bind", "127.0.0.1", "--unixsocket", socket,
                         "--save", "", "--appendonly", "no", "--dir", dir, "--enable-debug-command", "local", *tls_args, *@args,
                         out: File.join(dir, "redis.log"), err: [:child, :out])
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 10
    until ready?
      raise "redis-server did not start: #{File.read(File.join(dir, "redis.log"))}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.02
    end
    self
  end

  def ready?
    UNIXSocket.open(socket) { |s| s.write("PING\r\n") && s.gets == "+PONG\r\n" }
  rescue SystemCallError
    false
  end

  # Stops the server; `cleanup: false` keeps the folder for a restart on the same port.
  def stop(cleanup: true)
    if @pid
      Process.kill(:TERM, @pid)
      Process.wait(@pid)
      @pid = nil
    end
    FileUtils.rm_rf(dir) if cleanup
  rescue Errno::ESRCH, Errno::ECHILD
    @pid = nil
  end

  def self.free_port
    server = TCPServer.new("127.0.0.1", 0)
    server.addr[1]
  ensure
    server&.close
  end

  private

  def free_port = self.class.free_port
end
