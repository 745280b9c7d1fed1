# frozen_string_literal: true

# A TCP proxy in front of Redis that counts the commands its clients send,
# for the groups benchmark (bench/run.rb): Redis 7.0 counts commands per
# server (INFO commandstats), not per client, so the one process whose own
# commands are measured connects through this proxy instead.
# Usage: count_proxy.rb REDIS_PORT
# Prints the port it listens on (loopback); then, for each line read on
# stdin, prints the number of commands (RESP arrays, as hiredis writes them)
# its clients have sent so far; exits when stdin closes.
require "socket"

$stdout.sync = true
server = TCPServer.new("127.0.0.1", 0)
puts server.addr[1]
redis_port = Integer(ARGV.fetch(0))

# Counts the complete commands at the front of `buffer` and drops them;
# what remains is the start of a command still on its way.
def count_commands(buffer)
  count = 0
  pos = 0
  loop do
    eol = buffer.index("\r\n", pos) or break
    raise "count_proxy: unexpected #{buffer[pos, 16].inspect}" unless buffer.getbyte(pos) == 42 # '*'

    args = Integer(buffer[pos + 1...eol])
    at = eol + 2
    complete = args.times.all? do
      arg_eol = buffer.index("\r\n", at) or break false
      at = arg_eol + 2 + Integer(buffer[at + 1...arg_eol]) + 2
      at <= buffer.bytesize
    end
    break unless complete

    count += 1
    pos = at
  end
  buffer.slice!(0, pos)
  count
end

peer = {} # socket => the socket it forwards to
pending = {} # client socket => bytes of a command not yet complete
total = 0
loop do
  ready, = IO.select([server, $stdin, *peer.keys])
  ready.each do |io|
    if io == server
      client = server.accept
      upstream = TCPSocket.new("127.0.0.1", redis_port)
      [client, upstream].each { |s| s.setsockopt(Socket::IPPROTO_TCP, Socket::TCP_NODELAY, 1) }
      peer[client] = upstream
      peer[upstream] = client
      pending[client] = String.new # binary
    elsif io == $stdin
      exit if $stdin.gets.nil?
      puts total
    elsif peer.key?(io)
      data = begin
        io.read_nonblock(65_536)
      rescue IO::WaitReadable
        next
      rescue EOFError, SystemCallError
        nil
      end
      other = peer[io]
      if data.nil?
        [io, other].each do |s|
          peer.delete(s)
          pending.delete(s)
          s.close unless s.closed?
        end
        next
      end
      if pending.key?(io)
        pending[io] << data
        total += count_commands(pending[io])
      end
      begin
        other.write(data)
      rescue SystemCallError, IOError
        nil # the other side went away: its read sees it
      end
    end
  end
end
