# frozen_string_literal: true

require "fileutils"
require "socket"
require "tmpdir"

# A private redis-server for the suite: on a unix socket and a free TCP port
# in a temp folder, started before the specs and stopped after them. With
# REDIS_URL set, that server is used instead.
class RedisServer
  attr_reader :dir, :socket, :port, :pid

  def self.binary
    ENV.fetch("REDIS_SERVER", "redis-server")
  end

  def initialize
    @dir = Dir.mktmpdir("redis_ipc_spec")
    @socket = File.join(@dir, "redis.sock")
    @port = free_port
  end

  def url = "unix://#{socket}"
  def tcp_url = "redis://127.0.0.1:#{port}"

  def start
    # The sanitizer run preloads libasan for Ruby; redis-server needs none of it.
    @pid = Process.spawn({ "LD_PRELOAD" => nil }, self.class.binary, "--port", port.to_s, "--bind", "127.0.0.1", "--unixsocket", socket,
                         "--save", "", "--appendonly", "no", "--dir", dir, "--enable-debug-command", "local",
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

  private

  def free_port
    server = TCPServer.new("127.0.0.1", 0)
    server.addr[1]
  ensure
    server&.close
  end
end
