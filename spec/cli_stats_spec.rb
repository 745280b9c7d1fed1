# frozen_string_literal: true

require "spec_helper"
require "json"
require "tmpdir"
require_relative "support/cli_tool"

# redis-ipc stats (other processes' metrics, --watch, --prometheus, exit
# statuses) and redis-ipc peek, built with `make` as c_interop_spec does.
RSpec.describe "redis-ipc stats and peek", timeout: 90 do
  include CLITool

  let(:cli) { CLITool.build }
  let(:stream_name) { unique("cli") }

  after do
    (@children || []).each do |io|
      Process.kill(:TERM, io.pid)
      io.read
      io.close
    rescue Errno::ESRCH, IOError
      nil
    end
  end

  def start(*argv)
    io = IO.popen({ "REDIS_URL" => redis_url }, argv, "r", err: [:child, :out])
    (@children ||= []) << io
    io
  end

  # Waits until the instance has published a snapshot that satisfies the block.
  def published(stream, group, instance)
    eventually(within: 5) do
      line = raw_redis.get("#{stream}:#{group}:#{instance}:metrics")
      line if line && yield(line)
    end
  end

  it "shows each instance's metrics as published by its process, a C one (redis-ipc serve) included" do
    server = start(cli, "serve", "--stream", stream_name, "--group", "cserve", "--echo")
    expect(server.gets).to include("serving")
    client = connected_stream(stream_name, "ruby")
    4.times { |i| client.send_to_group(content: i, to: "cserve") }
    c_instance = JSON.parse(run_cli("stats", "--stream", stream_name, "--json").first)["groups"]
                     .find { |g| g["name"] == "cserve" }["instances"].first["id"]
    published(stream_name, "cserve", c_instance) { |line| line.include?(" fulfilled=4 ") }
    published(stream_name, "ruby", client.instance_id) { |line| line.include?(" replies_fulfilled=4 ") }

    stats = JSON.parse(run_cli("stats", "--stream", stream_name, "--json").first)
    by_group = stats["groups"].to_h { |g| [g["name"], g["instances"].first] }
    expect(by_group["cserve"]["metrics"]).to include("received" => 4, "fulfilled" => 4, "rejected" => 0, "sent" => 0)
    expect(by_group["cserve"]["metrics"]["latency"]["handler"]["samples"]).to eq(4)
    expect(by_group["ruby"]["metrics"]).to include("sent" => 4, "replies_fulfilled" => 4, "errors" => {})
    expect(by_group["ruby"]["metrics"]["latency"]["round_trip"]["p50"]).to be > 0

    out, _, status = run_cli("stats", "--stream", stream_name)
    expect(status.exitstatus).to eq(0)
    expect(out).to match(/^  #{c_instance}\s+yes\s+\S+s\s+0\s+4\s+4\s+0\s+0\s+0\s/)
  end

  # Alive means what it means to the engine's takeovers (dead_after), so
  # the tool never calls alive an instance its peers are taking over.
  it "shows an instance alive while its last heartbeat is within --dead-after (default: the engine's 1.3 s)" do
    raw_redis.xadd(stream_name, { "x" => "1" })
    raw_redis.xgroup(:create, stream_name, "quiet", "$")
    seconds, micros = raw_redis.time
    now_ms = seconds * 1000 + micros / 1000
    raw_redis.zadd("#{stream_name}:quiet:instances", [[now_ms - 3000, "silent3s"], [now_ms, "beating"]])
    alive = lambda do |*options|
      out, err, status = run_cli("stats", "--stream", stream_name, "--json", *options)
      expect(status.exitstatus).to eq(0), err
      JSON.parse(out)["groups"].first["instances"].to_h { |i| [i["id"], i["alive"]] }
    end
    expect(alive.call).to eq("silent3s" => false, "beating" => true)
    expect(alive.call("--dead-after", "5")).to eq("silent3s" => true, "beating" => true)
    _, err, status = run_cli("stats", "--stream", stream_name, "--dead-after", "soon")
    expect(status.exitstatus).to eq(64) # EX_USAGE
    expect(err).to include("--dead-after")
  end

  it "prints the Prometheus text format with --prometheus" do
    echo = connected_stream(stream_name, "echo")
    client = connected_stream(stream_name, "client")
    3.times { client.send_to_group(content: 1, to: "echo") }
    published(stream_name, "client", client.instance_id) { |line| line.include?(" replies_fulfilled=3 ") }
    published(stream_name, "echo", echo.instance_id) { |line| line.include?(" fulfilled=3 ") }
    out, err, status = run_cli("stats", "--stream", stream_name, "--prometheus")
    expect([err, status.exitstatus]).to eq(["", 0])
    families = out.lines.grep(/\A# TYPE /).map { |l| l.split[2] }
    expect(families).to eq(families.uniq)
    samples = out.lines.grep_v(/\A#/).to_h do |line|
      expect(line).to match(/\A\w+\{[^}]*\} [-+\d.eE]+\n\z/)
      name, value = line.split(" ")
      [name, Float(value)]
    end
    labels = %(stream="#{stream_name}",group="client",instance="#{client.instance_id}")
    expect(samples["redis_ipc_requests_sent_total{#{labels}}"]).to eq(3)
    expect(samples["redis_ipc_replies_total{#{labels},status=\"fulfilled\"}"]).to eq(3)
    expect(samples.keys.grep(/\Aredis_ipc_requests_answered_total\{.*group="echo".*status="fulfilled"/).map { |k| samples[k] }).to eq([3])
    expect(samples["redis_ipc_round_trip_seconds{#{labels},quantile=\"0.5\"}"]).to be > 0
  end

  # Not under valgrind: the C tool runs in a child process, which valgrind does not check.
  it "redraws with --watch, counters as rates per second, until SIGTERM", valgrind: false do
    connected_stream(stream_name, "echo")
    client = connected_stream(stream_name, "client")
    busy = Thread.new { loop { client.send_to_group(content: 1, to: "echo") && sleep(0.01) } }
    published(stream_name, "client", client.instance_id) { |line| line.include?(" sent=") }
    watch = start(cli, "stats", "--stream", stream_name, "--watch", "--interval", "0.7")
    frames = 0
    rate = nil
    until frames >= 3 && rate
      line = watch.gets
      frames += 1 if line.start_with?("stream #{stream_name}:")
      expect(line).not_to include("sent ") # the watch's header names rates
      rate = Float(line.split[3]) if line.start_with?("  #{client.instance_id} ") && line.split[3] != "-"
    end
    expect(rate).to be > 1
    Process.kill(:TERM, watch.pid)
    Process.wait(watch.pid)
    expect($?.exitstatus).to eq(0)
    @children.delete(watch)
    watch.close
  ensure
    busy&.kill
  end

  context "when Redis refuses" do
    it "exits 3 with the server's message for a wrong password or none" do
      user = unique("cli_user")
      raw_redis.call("ACL", "SETUSER", user, "on", ">right", "~*", "+@all")
      _, err, status = run_cli("stats", "--stream", stream_name, "--user", user, "--password", "wrong")
      expect([status.exitstatus, err]).to match([3, /WRONGPASS/])

      # A server that demands a password, asked without one.
      Dir.mktmpdir do |dir|
        socket = File.join(dir, "redis.sock")
        pid = Process.spawn({ "LD_PRELOAD" => nil }, RedisServer.binary, "--port", "0", "--unixsocket", socket, "--save", "",
                            "--appendonly", "no", "--dir", dir, "--requirepass", "secret", out: File::NULL, err: File::NULL)
        begin
          eventually { File.exist?(socket) }
          %w[stats peek].each do |sub|
            _, err, status = run_cli(sub, "--stream", stream_name, env: { "REDIS_URL" => "unix://#{socket}" })
            expect([status.exitstatus, err]).to match([3, /NOAUTH/]), sub
          end
          _, _, status = run_cli("stats", "--stream", stream_name, "--password", "secret", env: { "REDIS_URL" => "unix://#{socket}" })
          expect(status.exitstatus).to eq(0)
        ensure
          Process.kill(:TERM, pid)
          Process.wait(pid)
        end
      end
    ensure
      raw_redis.call("ACL", "DELUSER", user)
    end
  end

  describe "peek" do
    it "prints the latest entries with their fields, age and pending owner, and consumes nothing" do
      worker, gate = gated_stream(stream_name, "worker", content: "done")
      client = connected_stream(stream_name, "client")
      held = client.send_to_group_async(content: { "job" => 7 }, to: "worker", timeout: 20)
      eventually { worker.stats[:consumers_busy] == 1 }
      # Well-formed, for a group nobody runs: it stays, acknowledged by the groups that read it.
      raw_redis.xadd(stream_name, { "id" => "raw1", "instance_id" => "abcdef", "status" => "pending", "content" => "1",
                                    "source_group" => "raw", "destination_group" => "elsewhere" })
      before = raw_redis.xpending(stream_name, "worker")

      out, err, status = run_cli("peek", "--stream", stream_name, "--count", "5", "--json")
      expect([err, status.exitstatus]).to eq(["", 0])
      entries = JSON.parse(out)
      expect(entries.size).to eq(2)
      expect(entries.first["fields"]).to include("id" => "raw1", "destination_group" => "elsewhere")
      expect(entries.first["pending"]).to be_nil
      request = entries.last
      expect(request["fields"]).to include("status" => "pending", "content" => '{"job":7}', "destination_group" => "worker")
      expect(request["age"]).to be_between(0, 10)
      expect(request["pending"]).to include("consumer" => a_string_including(worker.instance_id), "deliveries" => 1)

      out, = run_cli("peek", "--stream", stream_name, "--group", "client", "--count", "1")
      expect(out).to match(/\A\d+-\d+  [\d.]+s ago  pending  client -> worker  pending on \S*#{worker.instance_id}\S* /)
      expect(out).to include(%(    content            {"job":7}))

      # Read-only: the same pending entries, and the request still answered.
      expect(raw_redis.xpending(stream_name, "worker")).to eq(before)
      gate << true
      expect(held.value.content).to eq("done")
      out, = run_cli("peek", "--stream", stream_name, "--group", "nobody")
      expect(out).to eq("no entries to or from group nobody on stream #{stream_name}\n")
    end

    it "refuses a bad --count, and stats a bad --interval" do
      %w[0 1001 x 5junk].each do |count|
        _, err, status = run_cli("peek", "--stream", stream_name, "--count", count)
        expect([status.exitstatus, err]).to eq([64, %(redis-ipc: --count must be a whole number from 1 to 1000, got "#{count}"\n)])
      end
      expect(run_cli("peek", "--stream", stream_name, "--count").values_at(1, 2).map { |v| v.is_a?(String) ? v : v.exitstatus })
        .to eq(["redis-ipc: --count needs a value\n", 64])
      %w[0 -1 1e3 3601].each do |interval|
        _, err, status = run_cli("stats", "--stream", stream_name, "--watch", "--interval", interval)
        expect([status.exitstatus, err]).to match([64, /\Aredis-ipc: --interval must be .*got "#{Regexp.escape(interval)}"\n\z/])
      end
    end
  end
end
