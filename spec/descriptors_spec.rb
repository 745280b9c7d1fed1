# frozen_string_literal: true

require "spec_helper"
require "json"

# A descriptor belongs to a thread while it waits for a reply, never to a
# request: requests in flight cost none, waiters one each, from a pool.
RSpec.describe "file descriptors", timeout: 120 do
  let(:stream_name) { unique("fds") }
  # valgrind runs every thread of this process one at a time.
  let(:threads) { ENV["RUBY_MEMCHECK_RUNNING"] ? 24 : 100 }

  # Doorbells are eventfds; Redis connections (which engines open lazily,
  # the heartbeat's a beat after connect) are left out of the count.
  def eventfds
    Dir.children("/proc/self/fd").count { |fd| (File.readlink("/proc/self/fd/#{fd}") rescue nil) == "anon_inode:[eventfd]" }
  end

  # Engines that earlier examples dropped hold eventfds until the GC frees
  # them (connected ones on a thread of their own): settle that first, and
  # keep the GC from freeing more while an example counts.
  around do |example|
    GC.start
    previous = nil
    eventually { (previous == (previous = eventfds)).tap { sleep 0.05 } }
    GC.disable
    example.run
  ensure
    GC.enable
  end

  # Eventfds besides the doorbells lent to waiters and kept spare: constant.
  def other_eventfds(*streams)
    eventfds - streams.sum { |s| s.stats.values_at(:reply_waiters, :spare_descriptors).sum }
  end

  # Not under valgrind: the requests are sent from a child process, which valgrind does not check.
  it "keeps 10,000 send_to_group_async requests in flight in a process limited to 1024 descriptors, File.open working", valgrind: false do
    # The child runs natively even in the valgrind pass (valgrind does not follow children).
    io = ruby_process(File.expand_path("fixtures/many_in_flight.rb", __dir__), stream_name, 10_000)
    expect(io.gets).to eq("ready\n")
    line = io.gets
    io.close
    result = JSON.parse(line.to_s, symbolize_names: true) rescue raise("many_in_flight.rb said: #{line.inspect}")
    expect(result[:limit]).to eq(1024)
    expect(result[:in_flight]).to eq(10_000)
    expect(result[:during]).to be < 100
    expect(result[:during] - result[:before]).to be < 10
    expect(result[:while_waiting]).to be < 100
    expect(result[:file_ok]).to be(true)
    expect(result[:wrong]).to eq(0)
    expect(result[:waiter]).to eq(9999)
    expect(result[:ledger_after]).to eq(0)
    # With no descriptor left at all, a wait raises like File.open, and the request survives it.
    expect(result[:out_of_fds]).to match(/\AErrno::EMFILE: .*no file descriptor left to wait for request/)
    expect(result[:after_hogs]).to eq("waits again")
  end

  it "lends one descriptor per waiting thread and gets every one back when waiters are killed or answered" do
    responder, gate = gated_stream(stream_name, "slow")
    sender = connected_stream(stream_name, "sender", consumer: { pool_size: 1 })
    gate << true
    sender.send_to_group(content: 0, to: "slow")
    baseline = other_eventfds(sender, responder)

    # Even threads wait for the gated group, odd ones for a group nobody serves.
    waiters = Array.new(threads) do |i|
      Thread.new { sender.send_to_group(content: i, to: i.even? ? "slow" : "nobody", fail_fast: false, timeout: 60) }
    end
    waiters.each { |t| t.report_on_exception = false }
    eventually { sender.stats[:reply_waiters] == threads }
    expect(sender.stats[:ledger_size]).to eq(threads)
    expect(other_eventfds(sender, responder)).to eq(baseline)

    waiters.select.with_index { |_, i| i.odd? }.each(&:kill).each(&:join)
    expect(sender.stats).to include(reply_waiters: threads / 2, ledger_size: threads / 2)

    (threads / 2).times { gate << true }
    answered = waiters.select.with_index { |_, i| i.even? }.map { |t| t.value.content }
    expect(answered).to eq((0...threads).step(2).to_a)
    expect(sender.stats).to include(reply_waiters: 0, ledger_size: 0)
    expect(sender.stats[:spare_descriptors]).to be <= 64
    expect(other_eventfds(sender, responder)).to eq(baseline)
  end

  it "gives the descriptor back when a waiter is interrupted at any moment" do
    sender = connected_stream(stream_name, "sender")
    stop = [->(t) { t.kill }, ->(t) { t.raise(IOError, "stop") }]
    round = lambda do |n|
      batch = Array.new(8) do
        Thread.new { sender.send_to_group(content: n, to: "nobody", fail_fast: false, timeout: 30) }.tap { |t| t.report_on_exception = false }
      end
      # Interrupted before, while or after they start waiting.
      sleep(n % 3 * 0.002)
      batch.each_with_index { |t, i| stop[i % 2].call(t) }
      batch.each { |t| t.join rescue IOError }
    end
    round.call(2)
    baseline = other_eventfds(sender)
    (ENV["RUBY_MEMCHECK_RUNNING"] ? 10 : 50).times { |n| round.call(n) }
    expect(sender.stats).to include(reply_waiters: 0, ledger_size: 0)
    expect(other_eventfds(sender)).to eq(baseline)
    # Timeout.timeout around a PendingReply's wait, too.
    pending = sender.send_to_group_async(content: 1, to: "nobody", fail_fast: false, timeout: 30)
    expect { Timeout.timeout(0.05) { pending.value } }.to raise_error(Timeout::Error)
    expect(sender.stats[:reply_waiters]).to eq(0)
  end

  it "holds no descriptor for async requests nobody waits for, and ready? does not take the reply" do
    connected_stream(stream_name, "echo")
    sender = connected_stream(stream_name, "sender")
    pending = Array.new(64) { |i| sender.send_to_group_async(content: i, to: "echo") }
    expect(sender.stats[:reply_waiters]).to eq(0)
    eventually { pending.all?(&:ready?) }
    expect(sender.stats[:ledger_size]).to eq(64) # ready, not taken
    expect(pending.map { |p| p.value.content }).to eq((0...64).to_a)
    expect(sender.stats).to include(reply_waiters: 0, ledger_size: 0)
  end
end
