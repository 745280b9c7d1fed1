# frozen_string_literal: true

# An RPC-style service: the public methods of a plain Ruby object answer
# requests sent to its group, and callers use a proxy that looks like the
# object. Server and client share this process here; they could as well be
# two processes on two hosts.
#
#   REDIS_URL=redis://127.0.0.1:6379 ruby -Ilib examples/rpc_service.rb
require "redis_ipc"

# The service: nothing in it knows about Redis.
class Inventory
  def initialize
    @stock = { "apple" => 3, "pear" => 0 }
  end

  def count(item)
    @stock.fetch(item) { raise KeyError, "no such item: #{item}" }
  end

  def take(item, quantity)
    left = count(item)
    raise ArgumentError, "only #{left} #{item}(s) left" if left < quantity

    @stock[item] = left - quantity
  end
end

# Serves the public methods of `service` on `group`: a request's content is
# { method:, args: }, the reply's content the method's return value. A
# method that raises rejects the request with "Class: message".
class RPCServer
  def initialize(stream_name, group, service)
    allowed = service.class.public_instance_methods(false).map(&:to_s)
    @stream = RedisIPC::Stream.new(stream_name, group)
    @stream.on_request do |entry|
      name = entry.content[:method].to_s
      if allowed.include?(name)
        fulfill_request(entry, content: service.public_send(name, *entry.content[:args]))
      else
        reject_request(entry, content: "NoMethodError: #{group} has no method #{name}")
      end
    rescue StandardError => e
      reject_request(entry, content: "#{e.class}: #{e.message}")
    end
    @stream.on_error { |error| warn("[#{group}] #{error.class}: #{error.message}") }
  end

  def start = @stream.connect
  def stop = @stream.disconnect
end

# Calls on the proxy become requests to the group; a rejected one raises.
class RPCClient < BasicObject
  class RemoteError < ::StandardError; end

  def initialize(stream, group)
    @stream = stream
    @group = group
  end

  def method_missing(name, *args)
    reply = @stream.send_to_group(content: { method: name, args: args }, to: @group, timeout: 5)
    ::Kernel.raise(RemoteError, reply.content) if reply.rejected?

    reply.content
  end

  def respond_to_missing?(_name, _include_private = false) = true
end

stream_name = "rpc_example_#{Process.pid}"
server = RPCServer.new(stream_name, "inventory", Inventory.new)
server.start
caller_stream = RedisIPC::Stream.new(stream_name, "shop").on_request { |entry| reject_request(entry, content: "no") }
caller_stream.connect
inventory = RPCClient.new(caller_stream, "inventory")

puts "apples: #{inventory.count("apple")}"
puts "took 2 apples, #{inventory.take("apple", 2)} left"
[-> { inventory.take("apple", 5) }, -> { inventory.count("plum") }, -> { inventory.destroy_all }].each do |call|
  call.call
rescue RPCClient::RemoteError => e
  puts "refused: #{e.message}"
end

caller_stream.disconnect
server.stop
