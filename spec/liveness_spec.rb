# frozen_string_literal: true

require "spec_helper"
require "rbconfig"

# Liveness on the server's clock: a request runs twice only when an instance
# really died. Each example runs two responder processes in one group that
# log every request they handle, sends traffic from this process, causes a
# fault for real, and counts how often each request ran. Not under valgrind:
# the responders judging liveness are child processes, which valgrind does
# not check, and the examples mostly wait for the faults to pass.
RSpec.describe "liveness", timeout: 120, valgrind: false do
  let(:stream_name) { unique("liveness") }

  # The LD_PRELOAD library that shifts a process's wall clock (built once).
  def clock_shift_library
    $clock_shift_library ||= begin
      dir = File.expand_path("../tmp/spec", __dir__)
      FileUtils.mkdir_p(dir)
      out = File.join(dir, "clock_shift.so")
      source = File.expand_path("fixtures/clock_shift.c", __dir__)
      system("cc", "-shared", "-fPIC", "-O1", "-o", out, source, "-ldl", exception: true)
      out
    end
  end

  # A responder whose handled requests are collected from its output.
  def start_logging_responder(delay, shift: nil)
    env = { "RESPONDER_LOG" => "1" }
    if shift
      # Under the sanitizer run the ASan runtime must stay first in the list.
      env["LD_PRELOAD"] = [ENV["LD_PRELOAD"], clock_shift_library].compact.join(" ")
      env["RIPC_CLOCK_SHIFT"] = shift.to_s
    end
    io = start_fixture("responder.rb", stream_name, "workers", delay, env: env)
    Thread.new do
      io.each_line { |line| @handled << line.split[1..] if line.start_with?("handled") }
    rescue IOError
      nil
    end
    io
  end

  before { @handled = Queue.new }

  after do
    (@processes || []).each do |io|
      io.close_write
      Process.wait(io.pid)
    rescue Errno::ECHILD, IOError
      nil
    end
  end

  # Sends `count` requests from `threads` threads; returns [replies, failures].
  def traffic(sender, threads:, count:, gap: 0)
    replies = Queue.new
    failures = Queue.new
    workers = Array.new(threads) do |t|
      Thread.new do
        count.times do |i|
          replies << sender.send_to_group(content: "#{t}-#{i}", to: "workers").content
          sleep gap if gap.positive?
        rescue RedisIPC::Error => e
          failures << e
        end
      end
    end
    yield if block_given?
    workers.each(&:join)
    [Array.new(replies.size) { replies.pop }, Array.new(failures.size) { failures.pop }]
  end

  def handled_counts
    runs = Array.new(@handled.size) { @handled.pop }
    runs.group_by(&:first).transform_values(&:size)
  end

  it "never takes over instances whose clocks are 30 s ahead and behind" do
    start_logging_responder(0.05, shift: 30)
    start_logging_responder(0.05, shift: -30)
    sender = connected_stream(stream_name, "sender", ledger: { entry_timeout: 10 })
    # About 4 s of traffic: three times dead_after, with requests always in flight.
    replies, failures = traffic(sender, threads: 8, count: 40, gap: 0.05)
    expect(failures).to be_empty
    expect(replies.size).to eq(320)
    expect(replies.map { |r| r[:echo] }.uniq.size).to eq(320)
    expect(replies.count { |r| r[:redelivered] }).to eq(0)
    sleep 0.3 # the last log lines
    counts = handled_counts
    expect(counts.size).to eq(320)
    expect(counts.values.max).to eq(1)
    # Both instances beat, on the server's clock, and both are alive.
    scores = raw_redis.zrange("#{stream_name}:workers:instances", 0, -1, with_scores: true).map(&:last)
    server_ms = raw_redis.time.then { |s, us| s * 1000 + us / 1000 }
    expect(scores.size).to eq(2)
    expect(scores).to all(be_within(1500).of(server_ms))
  end

  it "runs no request twice across a 3 s CLIENT PAUSE and a 5 s DEBUG SLEEP" do
    start_logging_responder(0.05)
    start_logging_responder(0.05)
    sender = connected_stream(stream_name, "sender", ledger: { entry_timeout: 15 })
    admin = Redis.new(url: redis_url, timeout: 10)
    replies, failures = traffic(sender, threads: 8, count: 60, gap: 0.05) do
      sleep 0.5
      admin.call("CLIENT", "PAUSE", "3000")
      sleep 4.5
      admin.call("DEBUG", "SLEEP", "5")
    end
    admin.close
    # A command that waits longer than its 1 s timeout fails with
    # ConnectionError (the stall is longer than the configured timeout);
    # nothing else may go wrong, and no request may run twice.
    expect(failures.map(&:class).uniq - [RedisIPC::ConnectionError, RedisIPC::TimeoutError]).to be_empty
    expect(replies.count { |r| r[:redelivered] }).to eq(0)
    sleep 0.3
    counts = handled_counts
    expect(counts.values.max).to eq(1), -> { "ran twice: #{counts.select { |_, n| n > 1 }.keys.first(5)}" }
    puts "\n    stalls: #{replies.size} replies, #{failures.size} sends failed during the stalls, none ran twice"
    # Serving goes on.
    expect(sender.send_to_group(content: "after", to: "workers").content[:echo]).to eq("after")
  end

  it "serves again within 1 s after every connection is killed three times, running nothing twice" do
    start_logging_responder(0.01)
    start_logging_responder(0.01)
    sender = connected_stream(stream_name, "sender", ledger: { entry_timeout: 10 })
    admin = Redis.new(url: redis_url)
    last_kill = nil
    resumed = nil
    replies, failures = traffic(sender, threads: 4, count: 50, gap: 0.02) do
      sleep 0.5
      3.times do
        admin.call("CLIENT", "KILL", "TYPE", "normal")
        sleep 0.1
      rescue Redis::BaseConnectionError
        retry
      end
      last_kill = monotonic
      # How soon a request from a fresh thread is answered again.
      until resumed
        begin
          sender.send_to_group(content: "probe-#{monotonic}", to: "workers", timeout: 0.5)
          resumed = monotonic - last_kill
        rescue RedisIPC::Error
          nil
        end
      end
    end
    admin.close
    puts "\n    CLIENT KILL x3: serving again #{resumed.round(3)}s after the last kill; #{failures.size} sends failed at the kills"
    expect(resumed).to be < 1.0
    expect(failures.map(&:class).uniq - [RedisIPC::ConnectionError]).to be_empty
    sleep 0.3
    expect(handled_counts.values.max).to eq(1)
  end
end
