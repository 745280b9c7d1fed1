# frozen_string_literal: true

require "spec_helper"
require "json"
require "open3"

# The engine without Ruby: the C example program and the redis-ipc tool,
# built with `make`, talking to Ruby streams.
RSpec.describe "C programs and the redis-ipc tool", timeout: 120 do
  let(:build) { SpecHelpers.make_c_programs }
  let(:stream_name) { unique("c") }
  let(:cli) { File.join(build, "redis-ipc") }
  let(:env) { { "REDIS_URL" => redis_url } }


  after do
    (@children || []).each do |io|
      io.close_write unless io.closed? # echo_peer stops when its stdin closes
      begin
        Process.kill(:TERM, io.pid) # redis-ipc serve stops on SIGTERM
      rescue Errno::ESRCH
        nil
      end
      io.read
      io.close
    end
  end

  def start(*argv)
    io = IO.popen(env, argv, "r+", err: [:child, :out])
    (@children ||= []) << io
    io
  end

  def run_cli(*args)
    Open3.capture3(env, cli, *args)
  end

  describe "the C example" do
    it "answers requests from Ruby" do
      peer = start(File.join(build, "echo_peer"), stream_name, "cpeer")
      expect(peer.gets).to start_with("ready")
      ruby = connected_stream(stream_name, "ruby")
      reply = ruby.send_to_group(content: { "n" => [1, 2] }, to: "cpeer")
      expect(reply).to be_fulfilled
      expect(reply.content).to eq({ c_says: { n: [1, 2] } })
      rejected = ruby.send_to_group(content: "fail", to: "cpeer")
      expect(rejected).to be_rejected
      expect(rejected.content).to eq("the C peer refuses")
    end

    it "sends requests to Ruby" do
      connected_stream(stream_name, "ruby") { |e| fulfill_request(e, content: { "ruby_got" => e.content }) }
      peer = start(File.join(build, "echo_peer"), stream_name, "cpeer", "ruby", '{"from":"C"}')
      expect(peer.gets).to start_with("ready")
      expect(peer.gets.chomp).to eq('reply fulfilled {"ruby_got":{"from":"C"}}')
    end
  end

  describe "redis-ipc send" do
    it "prints the reply of a Ruby group and exits 0, or 1 when rejected" do
      connected_stream(stream_name, "ruby") do |e|
        e.content == "no" ? reject_request(e, content: "refused") : fulfill_request(e, content: { "echo" => e.content })
      end
      out, err, status = run_cli("send", "--stream", stream_name, "--group", "shell", "--to", "ruby", '{"a":1}')
      expect([out, status.exitstatus]).to eq(["{\"echo\":{\"a\":1}}\n", 0]), err
      out, err, status = run_cli("send", "--stream", stream_name, "--group", "shell", "--to", "ruby", "no")
      expect([out, err, status.exitstatus]).to eq(["", "\"refused\"\n", 1])
    end

    it "exits 2 on a timeout, 3 when Redis cannot be reached, 64 on bad usage" do
      _, err, status = run_cli("send", "--stream", stream_name, "--group", "shell", "--to", "nobody", "--timeout", "0.3", "1")
      expect(status.exitstatus).to eq(2)
      expect(err).to include("no reply")
      _, err, status = Open3.capture3(cli, "send", "--stream", stream_name, "--group", "g", "--to", "x", "-h", "127.0.0.1", "-p", "1", "1")
      expect(status.exitstatus).to eq(3)
      expect(err).to include("redis://127.0.0.1:1")
      expect(run_cli("send", "--stream", stream_name, "1").last.exitstatus).to eq(64)
      expect(run_cli("send", "--stream", stream_name, "--group", "g", "--to", "x", "").last.exitstatus).to eq(64)
      expect(run_cli("bogus").last.exitstatus).to eq(64)
    end

    it "takes the connection from flags: --url, -s/--socket" do
      connected_stream(stream_name, "ruby")
      skip "needs a unix socket url" unless redis_url.start_with?("unix://")
      socket = redis_url.delete_prefix("unix://")
      out, _, status = Open3.capture3(cli, "send", "--stream", stream_name, "--group", "g", "--to", "ruby", "-s", socket, "7")
      expect([out, status.exitstatus]).to eq(["7\n", 0])
      out, _, status = Open3.capture3(cli, "send", "--url", redis_url, "--stream", stream_name, "--group", "g", "--to", "ruby", "8")
      expect([out, status.exitstatus]).to eq(["8\n", 0])
    end

    it "has --help for each subcommand" do
      %w[send serve stats].each do |sub|
        out, _, status = Open3.capture3(cli, sub, "--help")
        expect(status.exitstatus).to eq(0)
        expect(out).to include("usage: redis-ipc #{sub}", "--url")
      end
    end
  end

  describe "redis-ipc serve" do
    it "answers a Ruby sender by running a command: stdout fulfils, a failure rejects with stderr" do
      server = start(cli, "serve", "--stream", stream_name, "--group", "shell", "--",
                     "sh", "-c", 'read x; if [ "$x" = \'"boom"\' ]; then echo "it broke" >&2; exit 3; fi; echo "{\"shell\":$x}"')
      expect(server.gets).to include("serving")
      ruby = connected_stream(stream_name, "ruby")
      expect(ruby.send_to_group(content: [1, 2], to: "shell").content).to eq({ shell: [1, 2] })
      reply = ruby.send_to_group(content: "boom", to: "shell")
      expect(reply).to be_rejected
      expect(reply.content).to eq("it broke")
    end

    it "runs the command with no signal blocked, though the engine's threads block them all" do
      server = start(cli, "serve", "--stream", stream_name, "--group", "shell", "--",
                     "sh", "-c", "cat >/dev/null; grep SigBlk /proc/self/status | tr -d '\\t'")
      expect(server.gets).to include("serving")
      ruby = connected_stream(stream_name, "ruby")
      expect(ruby.send_to_group(content: 1, to: "shell").content).to eq("SigBlk:0000000000000000")
    end

    %i[TERM INT].each do |signal|
      it "echoes with --echo, and stops on SIG#{signal}" do
        server = start(cli, "serve", "--stream", stream_name, "--group", "echo", "--echo")
        expect(server.gets).to include("serving")
        ruby = connected_stream(stream_name, "ruby")
        expect(ruby.send_to_group(content: { "k" => "v" }, to: "echo").content).to eq({ k: "v" })
        Process.kill(signal, server.pid)
        Process.wait(server.pid)
        expect($?.exitstatus).to eq(0)
        @children.delete(server)
        server.close
      end
    end
  end

  describe "redis-ipc stats" do
    it "shows groups, instances, consumers, pending counts and the stream length" do
      ruby = connected_stream(stream_name, "ruby")
      out, _, status = run_cli("stats", "--stream", stream_name)
      expect(status.exitstatus).to eq(0)
      expect(out).to include("stream #{stream_name}:", "group ruby", ruby.instance_id, "dispatcher_#{ruby.instance_id}_1")
      out, _, status = run_cli("stats", "--stream", stream_name, "--json")
      expect(status.exitstatus).to eq(0)
      stats = JSON.parse(out)
      group = stats["groups"].find { |g| g["name"] == "ruby" }
      expect(group["instances"].map { |i| i["id"] }).to eq([ruby.instance_id])
      expect(group["instances"].first["alive"]).to be(true)
      expect(group["consumers"].map { |c| c["name"] }).to include("consumer_#{ruby.instance_id}_1")
      expect(stats["length"]).to be_a(Integer)
    end
  end
end
