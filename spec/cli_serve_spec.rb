# frozen_string_literal: true

require "spec_helper"
require "tmpdir"
require_relative "support/cli_tool"

# redis-ipc serve bounds each command: its time (--timeout, default what is
# left of the request's 5 s), its output (max_content_bytes) and its life
# (a process group of its own, killed with serve's stop and after each run).
RSpec.describe "redis-ipc serve limits", timeout: 60 do
  include CLITool

  let(:stream_name) { unique("cli_serve") }

  around do |example|
    Dir.mktmpdir("redis_ipc_serve") do |dir|
      @dir = dir
      example.run
    end
  end

  after do
    (@servers || []).each do |io|
      Process.kill(:KILL, io.pid)
      Process.wait(io.pid)
    rescue Errno::ESRCH, Errno::ECHILD
      nil
    ensure
      io.close
    end
  end

  def serve(*args, group: "shell")
    io = IO.popen({ "REDIS_URL" => redis_url }, [CLITool.build, "serve", "--stream", stream_name, "--group", group, *args],
                  "r", err: [:child, :out])
    (@servers ||= []) << io
    line = io.gets
    raise "serve did not start: #{line.inspect}" unless line&.include?("serving")

    io
  end

  # The pids a command wrote to a file (it writes them as it starts them).
  def pids_in(file, count)
    eventually { File.exist?(file) && File.read(file).split.size >= count }
    File.read(file).split.map(&:to_i)
  end

  def ask(content, timeout: 10)
    sender = @sender ||= connected_stream(stream_name, "ruby")
    sender.send_to_group(content: content, to: "shell", timeout: timeout)
  end

  it "kills a command that runs past --timeout with its whole process group, and rejects with the reason" do
    pids = File.join(@dir, "pids")
    serve("--timeout", "0.5", "--", "sh", "-c", "sleep 100 & echo $$ $! > #{pids}; sleep 100")
    reply = ask(1)
    expect(reply).to be_rejected
    expect(reply.content).to eq("redis-ipc: sh ran longer than 0.5 s and was killed")
    pids_in(pids, 2).each { |pid| eventually { !process_alive?(pid) } }
  end

  it "bounds a command by default by what is left of its request's 5 s" do
    serve("--", "sleep", "100")
    # Requests written by hand with old stream ids (a fresh stream takes
    # any id): 4.5 s old leaves the command half a second.
    # At once (MULTI): the reply to the first would take a newer id first.
    now_ms = raw_redis.time.then { |s, us| (s * 1000) + (us / 1000) }
    raw_redis.multi do |tx|
      { "expired" => 6000, "aged" => 4500 }.each do |id, age|
        tx.xadd(stream_name, { id: id, instance_id: "nobody", status: "pending", content: "1", source_group: "raw",
                               destination_group: "shell" }, id: "#{now_ms - age}-0")
      end
    end
    replies = eventually(within: 10) do
      found = raw_redis.xrange(stream_name).map(&:last).select { |f| f["status"] == "rejected" }
      found.size == 2 && found.to_h { |f| [f["id"], f["content"]] }
    end
    expect(replies["aged"]).to match(/\A"redis-ipc: sleep ran longer than 0\.\d+ s and was killed"\z/)
    expect(replies["expired"]).to start_with('"redis-ipc: not run: the request is older than the 5 s a sender waits by default')
  end

  it "rejects output over max_content_bytes, or not UTF-8, instead of writing it" do
    serve("--max-content-bytes", "1000", "--", "sh", "-c",
          'read x; case $x in \"out\") head -c 5000 /dev/zero | tr "\0" a;; \"err\") head -c 5000 /dev/zero >&2; exit 1;; ' \
          '*) printf "\377";; esac')
    %w[out err].each do |stream|
      reply = ask(stream)
      expect([reply.status, reply.content]).to eq(["rejected", "redis-ipc: sh wrote more than max_content_bytes (1000) and was killed"])
    end
    reply = ask("binary")
    expect([reply.status, reply.content]).to eq(["rejected", "redis-ipc: sh wrote output that is not valid UTF-8"])
  end

  it "ends what a command leaves running when it exits" do
    pids = File.join(@dir, "pids")
    serve("--", "sh", "-c", "sleep 100 & echo $! > #{pids}; echo '\"done\"'")
    expect(ask(1).content).to eq("done")
    pids_in(pids, 1).each { |pid| eventually { !process_alive?(pid) } }
  end

  %i[TERM INT].each do |signal|
    it "stops on SIG#{signal} while a command hangs, killing it and its children, and rejects its request" do
      pids = File.join(@dir, "pids")
      server = serve("--timeout", "100", "--", "sh", "-c", "sleep 100 & echo $$ $! > #{pids}; wait")
      pending = connected_stream(stream_name, "ruby").send_to_group_async(content: 1, to: "shell", timeout: 30)
      children = pids_in(pids, 2)
      Process.kill(signal, server.pid)
      # Far below the command's 100 s; the README gives the time measured.
      Timeout.timeout(10) { Process.wait(server.pid) }
      expect($?.exitstatus).to eq(0)
      @servers.delete(server).close
      expect(pending.value.content).to eq("redis-ipc: serve stopped while sh ran; it was killed")
      children.each { |pid| eventually { !process_alive?(pid) } }
    end
  end
end
