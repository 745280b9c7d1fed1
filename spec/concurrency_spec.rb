# frozen_string_literal: true

require "spec_helper"

RSpec.describe "concurrency and interrupts", timeout: 120 do
  let(:stream_name) { unique("conc") }

  # Not under valgrind: volume (valgrind runs one thread at a time); other examples reach its C paths.
  it "serves 50 threads x 100 requests from one process", valgrind: false do
    connected_stream(stream_name, "echo", consumer: { pool_size: 4 })
    parent = connected_stream(stream_name, "parent", ledger: { entry_timeout: 20 })
    failures = Queue.new
    50.times.map do |t|
      Thread.new do
        100.times do |i|
          reply = parent.send_to_group(content: [t, i], to: "echo")
          failures << [t, i, reply.content] unless reply.fulfilled? && reply.content == [t, i]
        end
      rescue StandardError => e
        failures << e
      end
    end.each(&:join)
    expect(failures.size).to eq(0), failures.size.zero? ? "" : failures.pop.inspect
    expect(parent.stats[:ledger_size]).to eq(0)
    # The last acknowledgements and deletes follow the replies by a moment.
    eventually { raw_redis.xpending(stream_name, "echo")["size"].zero? && raw_redis.xlen(stream_name).zero? }
  end

  describe "a sender waiting for a reply" do
    let(:parent) { connected_stream(stream_name, "parent") }

    def waiting_sender
      ready = Queue.new
      thread = Thread.new do
        ready << true
        parent.send_to_group(content: 1, to: "nobody", fail_fast: false, timeout: 30)
      end
      thread.report_on_exception = false
      ready.pop
      sleep 0.1 # let it block in the engine
      thread
    end

    it "ends at once on Thread#kill and frees its ledger slot" do
      10.times do
        thread = waiting_sender
        started = monotonic
        thread.kill
        thread.join
        expect(monotonic - started).to be < 0.5
      end
      expect(parent.stats[:ledger_size]).to eq(0)
    end

    it "ends at once on Thread#raise" do
      thread = waiting_sender
      started = monotonic
      thread.raise(IOError, "stop waiting")
      expect { thread.join }.to raise_error(IOError, "stop waiting")
      expect(monotonic - started).to be < 0.5
      expect(parent.stats[:ledger_size]).to eq(0)
    end

    it "ends at once on Timeout.timeout" do
      started = monotonic
      expect { Timeout.timeout(0.2) { parent.send_to_group(content: 1, to: "nobody", fail_fast: false, timeout: 30) } }
        .to raise_error(Timeout::Error)
      expect(monotonic - started).to be < 0.7
      expect(parent.stats[:ledger_size]).to eq(0)
    end

    it "ends at once on SIGINT (Ctrl-C) in its process" do
      script = <<~RUBY
        require "redis_ipc"
        s = RedisIPC::Stream.new(#{stream_name.inspect}, "sig")
        s.on_request { nil }
        s.connect
        $stdout.sync = true
        puts "waiting"
        begin
          s.send_to_group(content: 1, to: "nobody", fail_fast: false, timeout: 30)
        rescue Interrupt
          puts "interrupted ledger=\#{s.stats[:ledger_size]}"
        end
        s.disconnect
      RUBY
      io = ruby_process("-e", script)
      expect(io.gets).to eq("waiting\n")
      sleep 0.2
      started = monotonic
      Process.kill(:INT, io.pid)
      expect(io.gets).to eq("interrupted ledger=0\n")
      expect(monotonic - started).to be < 1
      io.close
    end

    it "is not disturbed by signals that are not interrupts (SIGCHLD)" do
      connected_stream(stream_name, "slow") do |e|
        sleep 0.5
        fulfill_request(e, content: "done")
      end
      sender = Thread.new { parent.send_to_group(content: 1, to: "slow", timeout: 5) }
      5.times { Process.wait(Process.spawn("true")) }
      expect(sender.value.content).to eq("done")
    end
  end

  # The binding wakes at most 2 threads for their replies at once (ledger's
  # wake limit: Ruby runs one thread at a time); the others wait their turn
  # and each thread that comes back wakes the next. Replies that arrive
  # while Ruby is busy in C (a long sort holds the GVL: no thread switch)
  # all queue; threads killed then, woken or waiting their turn, must hold
  # up none of the others. Not under valgrind (timing: the sort).
  it "wakes threads whose replies came while Ruby was busy in turn, and one killed meanwhile holds up none", valgrind: false do
    responder = start_fixture("responder.rb", stream_name, "workers", "0.2")
    parent = connected_stream(stream_name, "parent")
    expect(parent.send_to_group(to: "workers", content: "warm").content[:echo]).to eq("warm")
    numbers = Array.new(8_000_000) { |i| ((i * 7_919) % 8_000_009).to_f }
    threads = 12.times.map do |i|
      Thread.new { parent.send_to_group(to: "workers", content: i, timeout: 20).content[:echo] }
                .tap { |t| t.report_on_exception = false }
    end
    eventually { parent.stats[:reply_waiters] == 12 } # all sent, each waiting on its doorbell
    numbers.sort # pure C, about 2 s: the replies (3 every 0.2 s) arrive meanwhile
    killed = threads.values_at(0, 3, 6, 9, 11).each(&:kill)
    killed.each(&:join)
    (threads - killed).each { |t| expect(t.join(10)).to be(t), "a thread still waits after its turn should have come" }
    expect((threads - killed).map(&:value)).to eq([1, 2, 4, 5, 7, 8, 10])
    eventually { parent.stats.values_at(:ledger_size, :reply_waiters) == [0, 0] }
    expect(parent.send_to_group(to: "workers", content: "after").content[:echo]).to eq("after")
  ensure
    if responder
      responder.close_write
      responder.read
      responder.close
    end
  end

  it "stops consumer threads waiting for requests on Thread#kill" do
    s = connected_stream(stream_name, "g")
    expect(s.send_to_group(content: "start one", to: "g").content).to eq("start one") # consumers start on demand
    consumer = Thread.list.find { |t| t.name.to_s.include?("g consumer 1") }
    started = monotonic
    consumer.kill
    consumer.join
    expect(monotonic - started).to be < 0.5
    expect(s.send_to_group(content: "still", to: "g").content).to eq("still")
  end
end
