# frozen_string_literal: true

# Runs child.rb and parent.rb as two processes and prints what they say.
# Redis: REDIS_URL, else a server on localhost:6379 when one answers, else a
# private redis-server on a unix socket in a temp folder, stopped afterwards.
require "rbconfig"
require "socket"
require "tmpdir"
require "fileutils"

def local_redis?
  Socket.tcp("127.0.0.1", 6379, connect_timeout: 0.2) do |s|
    s.write("PING\r\n")
    s.wait_readable(0.5) && s.gets&.start_with?("+PONG")
  end
rescue SystemCallError, SocketError
  false
end

def start_private_redis
  dir = Dir.mktmpdir("redis_ipc_demo")
  socket = File.join(dir, "redis.sock")
  pid = Process.spawn("redis-server", "--port", "0", "--unixsocket", socket, "--save", "", "--appendonly", "no",
                      "--dir", dir, out: File::NULL, err: File::NULL)
  50.times do
    break if File.socket?(socket)

    sleep 0.05
  end
  [pid, dir, "unix://#{socket}"]
end

server_pid = nil
tmp = nil
url = ENV["REDIS_URL"].to_s
if url.empty?
  if local_redis?
    url = "redis://127.0.0.1:6379"
  else
    server_pid, tmp, url = start_private_redis
    puts "demo: started a private redis-server at #{url}"
  end
end
puts "demo: using Redis at #{url}"

env = { "REDIS_URL" => url, "HOUSEHOLD_STREAM" => "electric_household_demo_#{Process.pid}" }
ruby = [RbConfig.ruby, "-I", File.expand_path("../../lib", __dir__)]
child = IO.popen(env, [*ruby, File.join(__dir__, "child.rb")], err: %i[child out])
ready = Queue.new
printer = Thread.new do
  child.each_line do |line|
    print line
    ready << true if line.start_with?("child: ready")
  end
  ready << false
end

status = nil
begin
  raise "demo: the child did not start" unless ready.pop

  parent_ok = system(env, *ruby, File.join(__dir__, "parent.rb"))
  status = parent_ok ? 0 : 1
  puts "demo: the parent exited with #{status} (#{parent_ok ? "the child helped" : "a tantrum, twice"})"
ensure
  Process.kill(:TERM, child.pid)
  printer.join(10)
  child.close
  if server_pid
    Process.kill(:TERM, server_pid)
    Process.wait(server_pid)
    FileUtils.rm_rf(tmp)
  end
end
