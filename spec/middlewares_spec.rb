# frozen_string_literal: true

require "spec_helper"
require "active_support"
require "active_support/notifications"

# RedisIPC.register: hooks around every send and handled request
# (lib/redis_ipc/middlewares.rb), and the ActiveSupport::Notifications
# adapter (lib/redis_ipc/notifications.rb), with the real activesupport gem.
RSpec.describe "middlewares", timeout: 60 do
  let(:stream_name) { unique("mw") }
  let(:errors) { Queue.new }
  let(:sender) { connected_stream(stream_name, "sender", errors: errors) }

  def drain(queue)
    Array.new(queue.size) { queue.pop }
  end

  after { RedisIPC::Middlewares.registered.each { |m| RedisIPC.unregister(m) } }

  # Records what each hook saw, around the request, into `log`.
  def recorder(name, log)
    Module.new do
      define_method(:send_request) do |**payload, &block|
        log << [name, :send_before, payload.merge(stream: payload[:stream].group_name)]
        block.call
        log << [name, :send_after]
      rescue RedisIPC::Error => e
        log << [name, :send_error, e.class]
        raise
      end
      define_method(:handle_request) do |**payload, &block|
        log << [name, :handle, payload.merge(stream: payload[:stream].group_name)]
        block.call
      end
    end
  end

  it "wraps every send and every handled request, the last registered outermost" do
    log = Queue.new
    connected_stream(stream_name, "echo")
    RedisIPC.register(recorder(:first, log))
    RedisIPC.register(recorder(:second, log))
    expect(sender.send_to_group(content: "hi", to: "echo").content).to eq("hi")
    calls = drain(log)
    sends = calls.reject { |_, kind,| kind == :handle }
    expect(sends.map { |name, kind,| [name, kind] }).to eq([%i[second send_before], %i[first send_before], %i[first send_after], %i[second send_after]])
    expect(sends.first.last).to eq(stream: "sender", group: "echo", content_bytes: 4, async: false)
    handles = calls.select { |_, kind,| kind == :handle }
    expect(handles.map(&:first)).to eq(%i[second first])
    expect(handles.first.last).to include(stream: "echo", group: "echo", content_bytes: 4, source_group: "sender")
    expect(handles.first.last[:entry_id]).to match(/\A\h{21}\z/)

    expect(sender.send_to_group_async(content: 1, to: "echo").value.content).to eq(1)
    expect(drain(log).find { |_, kind,| kind == :send_before }.last).to include(async: true)
    expect { sender.send_to_group(content: 1, to: "nobody") }.to raise_error(RedisIPC::NoRespondersError)
    expect(drain(log)).to include([:first, :send_error, RedisIPC::NoRespondersError])
    expect(errors.size).to eq(0)
  end

  it "never lets a hook break a request: what hooks raise goes to on_error" do
    handled = Queue.new
    echo_errors = Queue.new
    connected_stream(stream_name, "echo", errors: echo_errors) do |entry|
      handled << entry.content
      fulfill_request(entry, content: entry.content)
    end
    before = Module.new { def send_request(**) = raise("before yield") }
    after = Module.new do
      def send_request(**)
        yield
        raise ArgumentError, "after yield"
      end

      def handle_request(**)
        raise "in handle"
      end
    end
    skipper = Module.new { def send_request(**) = :skipped }
    [before, after, skipper].each { |m| RedisIPC.register(m) }
    expect(sender.send_to_group(content: 5, to: "echo").content).to eq(5)
    expect(sender.send_to_group_async(content: 6, to: "echo").value.content).to eq(6)
    # Each request ran once.
    expect([handled.pop, handled.pop]).to eq([5, 6])
    expect(handled.size).to eq(0)
    messages = drain(errors).map { |e| "#{e.class}: #{e.message}" }
    expect(messages.count("RuntimeError: before yield")).to eq(2)
    expect(messages.count("ArgumentError: after yield")).to eq(2)
    expect(messages.grep(/did not yield to send_request/).size).to eq(2)
    expect(eventually { echo_errors.size >= 2 && drain(echo_errors) }.map(&:message)).to eq(["in handle"] * 2)
  end

  it "passes the request's own outcome through hooks, even one that swallows it" do
    swallow = Module.new do
      def send_request(**)
        yield
      rescue RedisIPC::Error
        :swallowed
      end

      def handle_request(**)
        yield
      rescue StandardError
        :swallowed
      end
    end
    RedisIPC.register(swallow)
    connected_stream(stream_name, "failing", errors: errors) { |_entry| raise "handler failed" }
    reply = sender.send_to_group(content: 1, to: "failing")
    expect(reply).to be_rejected
    expect(reply.content).to eq("RuntimeError: handler failed")
    expect { sender.send_to_group(content: 1, to: "nobody") }.to raise_error(RedisIPC::NoRespondersError)
    gate = Queue.new
    connected_stream(stream_name, "stuck") { |_entry| gate.pop }
    expect { sender.send_to_group(content: 1, to: "stuck", timeout: 0.2) }.to raise_error(RedisIPC::TimeoutError)
    gate << true
  end

  it "refuses a middleware with no hook, or one registered twice, and forgets one unregistered" do
    expect { RedisIPC.register(Module.new) }.to raise_error(ArgumentError, /defines none/)
    expect { RedisIPC.register(Object.new) }.to raise_error(ArgumentError, /defines none/)
    log = Queue.new
    middleware = recorder(:once, log)
    RedisIPC.register(middleware)
    expect { RedisIPC.register(middleware) }.to raise_error(ArgumentError, /already/)
    RedisIPC.unregister(middleware)
    connected_stream(stream_name, "echo")
    sender.send_to_group(content: 1, to: "echo")
    expect(log.size).to eq(0)
    # An object (not a module) works too.
    counter = Class.new do
      attr_reader :sends

      def initialize = @sends = 0

      def send_request(**)
        @sends += 1
        yield
      end
    end.new
    RedisIPC.register(counter)
    sender.send_to_groups(content: 1, to: %w[echo])
    expect(counter.sends).to eq(1)
  end

  it "publishes send.redis_ipc and handle.redis_ipc through ActiveSupport::Notifications" do
    events = Queue.new
    subscribers = %w[send.redis_ipc handle.redis_ipc].map do |name|
      ActiveSupport::Notifications.subscribe(name) { |event| events << event }
    end
    RedisIPC.register(RedisIPC::Notifications)
    connected_stream(stream_name, "echo")
    sender.send_to_group(content: "abc", to: "echo")
    got = [events.pop, events.pop].sort_by(&:name)
    handle, send = got
    expect(send.name).to eq("send.redis_ipc")
    expect(send.payload).to eq(stream: stream_name, from: "sender", group: "echo", content_bytes: 5, async: false)
    expect([send.duration, handle.duration]).to all(be_a(Float).and(be >= 0))
    expect(handle.name).to eq("handle.redis_ipc")
    expect(handle.payload).to include(stream: stream_name, group: "echo", content_bytes: 5, source_group: "sender")
    expect { sender.send_to_group(content: 1, to: "nobody") }.to raise_error(RedisIPC::NoRespondersError)
    failed = events.pop
    expect(failed.payload[:exception]).to eq(["RedisIPC::NoRespondersError", failed.payload[:exception_object].message])
  ensure
    subscribers&.each { |s| ActiveSupport::Notifications.unsubscribe(s) }
  end
end
