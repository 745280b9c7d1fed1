# frozen_string_literal: true

require "spec_helper"

# Fork safety (lib/redis_ipc/fork_hook.rb): a stream connected in a parent is,
# in a forked child, simply not connected; `connect` there makes the child an
# instance of its own, and the parent's instance goes on as if nothing
# happened. The servers' recipes (README "Forking servers") are played here
# with real forks.
RSpec.describe "fork safety", timeout: 90 do
  let(:stream_name) { unique("fork") }

  # A forked worker that runs the block (given its stream) and then answers
  # commands on a pipe, one JSON line each way: "report" (what the block
  # returned, with its pid) and "stop" (disconnects and exits).
  class ForkedWorker
    attr_reader :pid, :report

    def initialize(stream)
      @commands, commands_writer = IO.pipe
      reports_reader, @reports = IO.pipe
      @pid = fork do
        commands_writer.close
        reports_reader.close
        serve(stream, yield(stream))
      end
      @commands.close
      @reports.close
      @commands = commands_writer
      @reports = reports_reader
      @report = read_line
    end

    def stop
      @commands.puts("stop")
      outcome = read_line
      Process.wait(@pid)
      [@commands, @reports].each(&:close)
      outcome
    end

    private

    def read_line
      line = @reports.gets
      raise "worker #{@pid} ended without a report" unless line

      JSON.parse(line)
    end

    def serve(stream, report)
      @reports.puts(JSON.generate(report.merge(pid: Process.pid)))
      @commands.gets
      stream.disconnect
      @reports.puts(JSON.generate(stopped: true, connected: stream.connected?))
    rescue Exception => e # rubocop:disable Lint/RescueException
      @reports.puts(JSON.generate(error: "#{e.class}: #{e.message}"))
    ensure
      exit!(0)
    end
  end

  def web_stream(group = "web")
    s = RedisIPC::Stream.new(stream_name, group)
    s.on_request { |entry| fulfill_request(entry, content: Process.pid) }
    (@streams ||= []) << s
    s
  end

  def connect(stream)
    stream.connect(redis_options: { url: redis_url })
  end

  def instances(group = "web")
    now = raw_redis.time.then { |s, us| (s * 1000) + (us / 1000) }
    raw_redis.zrangebyscore("#{stream_name}:#{group}:instances", now - 1300, "+inf")
  end

  def answering_pids(count)
    client = connected_stream(stream_name, "client")
    Array.new(count) { client.send_to_group(content: "who", to: "web", timeout: 5).content }.uniq.sort
  end

  # Not under valgrind: the child's side runs silently under valgrind (a fork is not checked).
  it "leaves the parent's stream unconnected in the child, which connects and serves as an instance of its own", valgrind: false do
    web = web_stream
    connect(web)
    parent_id = web.instance_id
    consumers_key = "#{stream_name}:web:#{parent_id}:consumers"
    listed = raw_redis.lrange(consumers_key, 0, -1)
    worker = ForkedWorker.new(web) do |stream|
      before = { connected: stream.connected?, instance_id: stream.instance_id, watchers: Thread.list.count { |t| t.name == "redis_ipc watcher" } }
      connect(stream)
      before.merge(child_id: stream.instance_id, connected_after: stream.connected?)
    end
    expect(worker.report).to include("connected" => false, "instance_id" => nil, "watchers" => 0, "connected_after" => true)
    expect(worker.report["child_id"]).not_to eq(parent_id)
    eventually { instances.sort == [parent_id, worker.report["child_id"]].sort }

    # The parent is untouched: same instance, same keys, still connected.
    expect(web.connected?).to be(true)
    expect(web.instance_id).to eq(parent_id)
    expect(raw_redis.lrange(consumers_key, 0, -1)).to eq(listed)
    expect(answering_pids(20) - [Process.pid, worker.pid]).to eq([])

    expect(worker.stop).to eq("stopped" => true, "connected" => false)
    # The child's disconnect took only its own instance away.
    expect(instances).to eq([parent_id])
    expect(raw_redis.lrange(consumers_key, 0, -1)).to eq(listed)
    expect(answering_pids(20)).to eq([Process.pid])
  end

  it "fails a reply awaited in the parent, when waited for in the child, with ConnectionError" do
    _, gate = gated_stream(stream_name, "slow", content: "late")
    client = connected_stream(stream_name, "client")
    pending = client.send_to_group_async(content: 1, to: "slow", timeout: 10)
    outcome = in_fork do
      pending.value
      "answered (wrong)"
    rescue RedisIPC::Error => e
      "#{e.class}: #{e.message}"
    end
    expect(outcome).to match(/ConnectionError: request \h+ was sent by process #{Process.pid}, before a fork/)
    gate << true
    expect(pending.value.content).to eq("late")
  end


  # Request ids come from random bytes drawn a few hundred at a time per
  # thread: the forking thread's unused ones must not serve the child too.
  it "gives a forked child request ids of its own", valgrind: false do
    echo = connected_stream(stream_name, "echo")
    echo.send_to_group(content: 0, to: "echo") # this thread now holds unused random bytes
    child_ids = in_fork do
      child = RedisIPC::Stream.new(stream_name, "child").on_request { |e| fulfill_request(e, content: e.content) }
      child.connect(redis_options: { url: redis_url })
      ids = Array.new(8) { child.send_to_group_async(content: 1, to: "child").tap(&:value).id }
      child.disconnect
      ids
    end
    parent_ids = Array.new(8) { echo.send_to_group_async(content: 1, to: "echo").tap(&:value).id }
    expect(child_ids.size).to eq(8)
    # No 8 hex digits in common: bytes from one pool, at shifted places,
    # would share them (by chance: about 1 in 100,000 runs).
    parent_digits = parent_ids.join(" ")
    shared = child_ids.flat_map { |id| (0..id.size - 8).map { |i| id[i, 8] } }.select { |s| parent_digits.include?(s) }
    expect(shared).to eq([])
  end
  # Puma with preload_app!: the app (and its stream) connects in the master;
  # on_worker_boot connects it again in each worker. The master here keeps
  # its own instance serving, as a master that also serves would.
  # Not under valgrind: the workers' side runs silently under valgrind (a fork is not checked).
  it "serves from a master and its preloaded workers (Puma preload_app!)", valgrind: false do
    web = web_stream
    connect(web)
    master_id = web.instance_id
    workers = Array.new(2) do
      ForkedWorker.new(web) do |stream| # on_worker_boot
        connect(stream)
        { instance_id: stream.instance_id }
      end
    end
    worker_ids = workers.map { |w| w.report["instance_id"] }
    eventually { instances.sort == [master_id, *worker_ids].sort }
    expect(answering_pids(30) - [Process.pid, *workers.map(&:pid)]).to eq([])

    # The workers alone: the master stops serving for a moment.
    web.disconnect
    expect(instances.sort).to eq(worker_ids.sort)
    expect(answering_pids(30) - workers.map(&:pid)).to eq([])
    connect(web)

    # The workers shut down (phased restart); the master goes on.
    workers.each { |w| expect(w.stop).to eq("stopped" => true, "connected" => false) }
    expect(instances).to eq([web.instance_id])
    expect(answering_pids(20)).to eq([Process.pid])
  end

  # Unicorn: the master connects to send during boot, disconnects in
  # before_fork, and each worker connects in after_fork. Workers are forked
  # again after one dies, as Unicorn does.
  # Not under valgrind: the workers' side runs silently under valgrind (a fork is not checked).
  it "serves from workers forked and re-forked by a master that does not serve (Unicorn)", valgrind: false do
    web = web_stream
    connect(web)
    boot_client = connected_stream(stream_name, "boot")
    echo = connected_stream(stream_name, "echo")
    expect(boot_client.send_to_group(content: "boot", to: "echo").content).to eq("boot")
    web.disconnect # before_fork
    after_fork = lambda do |stream|
      connect(stream)
      { instance_id: stream.instance_id }
    end
    workers = Array.new(2) { ForkedWorker.new(web, &after_fork) }
    eventually { instances.sort == workers.map { |w| w.report["instance_id"] }.sort }
    expect(answering_pids(30) - workers.map(&:pid)).to eq([])

    workers.shift.stop
    workers << ForkedWorker.new(web, &after_fork)
    eventually { instances.sort == workers.map { |w| w.report["instance_id"] }.sort }
    expect(answering_pids(30) - workers.map(&:pid)).to eq([])
    workers.each(&:stop)
    expect(instances).to eq([])
    expect(echo.connected?).to be(true)
  end

  # A Rails initializer creates one stream per process in a constant and
  # connects it on first use; whatever forks the app later (a preloading
  # server, a job runner forking per job), each process connects its own.
  # Not under valgrind: the children's side runs silently under valgrind (a fork is not checked).
  it "connects lazily, once per process, from an initializer's accessor (Rails)", valgrind: false do
    # config/initializers/redis_ipc.rb, as the README shows it.
    url = redis_url
    name = stream_name
    app = Module.new do
      lock = Mutex.new
      stream = RedisIPC::Stream.new(name, "rails").on_request { |e| fulfill_request(e, content: Process.pid) }
      define_singleton_method(:stream) { stream }
      define_singleton_method(:ipc) do
        lock.synchronize { stream.connected? ? stream : stream.connect(redis_options: { url: url }) }
      end
    end
    (@streams ||= []) << app.stream
    connected_stream(stream_name, "echo")
    parent_id = app.ipc.instance_id
    expect(app.ipc.send_to_group(content: "from parent", to: "echo").content).to eq("from parent")
    outcome = in_fork do
      first = app.ipc
      { id: first.instance_id, same: app.ipc.equal?(first),
        echo: first.send_to_group(content: "from child", to: "echo").content,
        rails: first.send_to_group(content: "who", to: "rails").content }.tap { first.disconnect }
    end
    expect(outcome["id"]).not_to eq(parent_id)
    expect(outcome["same"]).to be(true)
    expect(outcome["echo"]).to eq("from child")
    expect(outcome["rails"]).to be_a(Integer)
    expect(app.ipc.instance_id).to eq(parent_id)
    expect(app.ipc.send_to_group(content: "who", to: "rails").content).to eq(Process.pid)
  end

  # "fd inode" of each socket the process holds.
  def sockets
    Dir.children("/proc/self/fd").filter_map do |fd|
      link = File.readlink("/proc/self/fd/#{fd}")
      "#{fd} #{link}" if link.start_with?("socket:")
    rescue SystemCallError
      nil
    end
  end

  # Not under valgrind: the child's side runs silently under valgrind (a fork is not checked).
  it "closes the parent's Redis connections in the child without a command on them", valgrind: false do
    web = web_stream
    before = sockets # the suite's own (clients of earlier examples not yet collected...)
    connect(web)
    engine_sockets = sockets - before
    outcome = in_fork { { left: sockets - before } }
    # The engine holds at least two (its dispatcher's and one of its pool);
    # the child closed every one that was not in use at the fork (a beat or
    # a write may hold one of the pool's at that moment).
    expect(engine_sockets.size).to be >= 2
    expect(outcome["left"].size).to be <= 1
    expect(web.send_to_group(content: "who", to: "web").content).to eq(Process.pid)
  end
end
