# frozen_string_literal: true

require "spec_helper"
require "json"

# Consumers start on demand, up to consumer.pool_size, and end when idle
# (Stream::ConsumerPool); one watcher thread per process reports every
# stream's background errors and starts a stream's first consumer
# (RedisIPC::Watcher).
RSpec.describe "consumer threads on demand and the process's watcher", timeout: 90 do
  let(:stream_name) { unique("consumers") }
  let(:idle) { RedisIPC::Stream::ConsumerPool::IDLE_TIMEOUT }

  def consumers(group)
    Thread.list.count { |t| t.name.to_s.start_with?("redis_ipc #{group} consumer") }
  end

  def watchers
    Thread.list.count { |t| t.name == "redis_ipc watcher" }
  end

  def malformed(group)
    raw_redis.xadd(stream_name, { "id" => SecureRandom.hex(10), "destination_group" => group, "status" => "pending" })
  end

  after { finish_processes }

  # The child's next report; other lines it prints (a warning) are skipped,
  # and shown if it ends without one.
  def read_report(child)
    other = []
    while (line = child.gets)
      return JSON.parse(line) if line.start_with?("{")

      warn "many_streams.rb: #{line}"
      other << line
    end
    raise "many_streams.rb ended without a report: #{other.join}"
  end

  # Not under valgrind: the 25 streams run in a child process, which valgrind does not check.
  it "runs 25 streams that each served a request with one Ruby thread per stream at most, and none once idle", valgrind: false do
    count = 25
    child = start_fixture("many_streams.rb", stream_name, count)
    sender = connected_stream(stream_name, "sender")
    count.times { |i| expect(sender.send_to_group(content: "hi", to: "g#{i}", timeout: 5).content).to eq("g#{i}") }
    child.puts "report"
    busy = read_report(child)
    # Consumers end IDLE_TIMEOUT after their last request.
    idle_report = eventually(within: 3 * idle + 10) do
      child.puts "report"
      r = read_report(child)
      # Ruby keeps an ended thread's native thread a few seconds for reuse.
      r["ruby"].keys.none? { |name| name.end_with?(" consumer") } &&
        r["threads"] - r["names"].select { |name, _| name.start_with?("ripc") }.sum { |_, n| n } <= 2 && r
    end
    [busy, idle_report].each do |r|
      r["engine"] = r["names"].select { |name, _| name.start_with?("ripc") }.sum { |_, n| n }
      r["consumers"] = r["ruby"].select { |name, _| name.end_with?(" consumer") }.sum { |_, n| n }
    end
    puts "\n    25 streams after a request each: #{busy['threads']} threads (#{busy['engine']} engine, " \
         "#{busy['threads'] - busy['engine']} Ruby's, #{busy['consumers']} of them consumers); " \
         "once idle: #{idle_report['threads']} (#{idle_report['engine']} engine)"
    # Ruby's side: the main thread, the watcher, and at most the one
    # consumer each stream started for its request (no error reporter).
    expect(busy["ruby"]["redis_ipc watcher"]).to eq(1)
    expect(busy["ruby"].keys.grep(/error reporter/)).to be_empty
    expect(busy["consumers"]).to be <= count
    expect(busy["threads"] - busy["engine"]).to be <= count + 2
    expect(busy["threads"]).to be <= 60 + busy["engine"]
    expect(idle_report["threads"] - idle_report["engine"]).to eq(2)
  end

  # Not under valgrind: waits for consumers to idle out; the consumer pool is Ruby.
  it "starts consumers under load, runs pool_size requests at a time, and ends them when idle", valgrind: false do
    lock = Mutex.new
    running = 0
    most = 0
    worker = connected_stream(stream_name, "worker", consumer: { pool_size: 5 }) do |entry|
      lock.synchronize { most = [most, running += 1].max }
      sleep 0.5
      lock.synchronize { running -= 1 }
      fulfill_request(entry, content: entry.content)
    end
    expect(consumers("worker")).to eq(0) # none before a request
    sender = connected_stream(stream_name, "sender")
    started = monotonic
    replies = 10.times.map { |i| sender.send_to_group_async(content: i, to: "worker", timeout: 10) }
    # They stay (idle) after the burst, so this cannot miss them.
    eventually { consumers("worker") == 5 }
    expect(replies.map { |r| r.value.content }).to eq((0..9).to_a)
    took = monotonic - started
    puts "\n    10 requests of 0.5 s, pool_size 5: #{took.round(2)} s, at most #{most} at once"
    expect(most).to eq(5)
    expect(took).to be < 4 # two rounds of five, not ten in a row (5 s)
    # Each one ends once idle for IDLE_TIMEOUT; serving goes on.
    eventually(within: 3 * idle + 5) { consumers("worker").zero? }
    expect(worker.stats[:queued_requests]).to eq(0)
    expect(sender.send_to_group(content: "again", to: "worker", timeout: 5).content).to eq("again")
    expect(consumers("worker")).to eq(1)
  end

  # Not under valgrind: volume and churn of the Ruby consumer pool; other examples reach its C paths.
  it "never leaves a request queued with no consumer, while consumers end and start all the time", valgrind: false do
    # Consumers that end after 5 ms of idleness: the last one ending races
    # with requests coming, and every request must still find a consumer
    # (the watcher starts one), or it would time out.
    stub_const("RedisIPC::Stream::ConsumerPool::IDLE_TIMEOUT", 0.005)
    errors = Queue.new
    started = Queue.new
    connected_stream(stream_name, "churn", errors: errors, consumer: { pool_size: 3 }) do |entry|
      started << Thread.current
      sleep(rand * 0.003)
      fulfill_request(entry, content: entry.content)
    end
    sender = connected_stream(stream_name, "sender")
    4.times.map do |t|
      Thread.new do
        300.times do |i|
          sleep(rand * 0.01) if i.odd?
          expect(sender.send_to_group(content: [t, i], to: "churn", timeout: 3).content).to eq([t, i])
        end
      end
    end.each(&:join)
    threads = Array.new(started.size) { started.pop }.uniq
    puts "\n    1200 requests served by #{threads.size} consumer threads in turn"
    expect(threads.size).to be > 3 # they did end and start again
    expect(errors.size).to eq(0)
  end

  it "reports background errors of many streams on one watcher thread, also after one of them disconnects" do
    groups = %w[a b c d]
    errors = groups.to_h { |g| [g, Queue.new] }
    streams = groups.to_h { |g| [g, connected_stream(stream_name, g, errors: errors[g])] }
    expect(watchers).to eq(1)
    expect(Thread.list.map(&:name).grep(/error reporter/)).to be_empty
    ids = groups.to_h { |g| [g, malformed(g)] }
    groups.each do |g|
      error = Timeout.timeout(5) { errors[g].pop }
      expect(error).to be_a(RedisIPC::MalformedEntryError)
      expect(error.message).to include(ids[g])
    end
    streams["b"].disconnect
    expect(watchers).to eq(1)
    ids = groups.to_h { |g| [g, malformed(g)] }
    (groups - ["b"]).each do |g|
      expect(Timeout.timeout(5) { errors[g].pop }.message).to include(ids[g])
    end
    sleep 0.2
    expect(errors["b"]).to be_empty
    (groups - ["b"]).each(&->(g) { streams[g].disconnect })
    expect(watchers).to eq(0) # the last disconnect ends it
  end

  it "reports errors through on_error raised into on_error itself and keeps reporting" do
    calls = Queue.new
    s = RedisIPC::Stream.new(stream_name, "fragile")
    s.on_request { |e| fulfill_request(e, content: e.content) }
    s.on_error do |e|
      calls << e
      raise "on_error broke"
    end
    s.connect(redis_options: { url: redis_url })
    (@streams ||= []) << s
    2.times do
      id = malformed("fragile")
      expect(Timeout.timeout(5) { calls.pop }.message).to include(id)
    end
  end

  # Not under valgrind: the child's side runs silently under valgrind (a fork is not checked).
  it "gives a forked child a watcher of its own", valgrind: false do
    connected_stream(stream_name, "parent", errors: Queue.new)
    outcome = in_fork do
      errors = Queue.new
      child = RedisIPC::Stream.new(stream_name, "child").on_request { |e| fulfill_request(e, content: e.content) }
      child.on_error { |e| errors << e }
      child.connect(redis_options: { url: redis_url })
      id = Redis.new(url: redis_url).xadd(stream_name, { "destination_group" => "child", "nonsense" => "1" })
      error = Timeout.timeout(5) { errors.pop }
      echo = child.send_to_group(content: "from child", to: "child", timeout: 5).content
      watcher_threads = Thread.list.count { |t| t.name == "redis_ipc watcher" }
      child.disconnect
      { error: error.message.include?(id), echo: echo, watchers: watcher_threads }
    end
    expect(outcome).to eq("error" => true, "echo" => "from child", "watchers" => 1)
    expect(watchers).to eq(1) # the parent's is untouched
  end
end
