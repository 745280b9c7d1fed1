# frozen_string_literal: true

require "spec_helper"
require "json"

RSpec.describe "several processes", timeout: 120 do
  let(:stream_name) { unique("procs") }

  after { finish_processes }

  it "runs the README's realistic example: child and parent in two processes" do
    env = { "HOUSEHOLD_STREAM" => stream_name }
    examples = File.expand_path("../examples/household", __dir__)
    child = ruby_process(File.join(examples, "child.rb"), env: env)
    expect(child.gets).to eq("child: ready\n")
    parent = ruby_process(File.join(examples, "parent.rb"), env: env)
    output = parent.read
    parent.close
    expect([0, 1]).to include($?.exitstatus)
    expect(output).to include("parent: Please do this task for me, child")
    expect(output).to match(/Child said: (Yes, creators|No! <Tantrum initiated>)/)
    Process.kill(:TERM, child.pid)
    expect(child.read).to include("child: parent asks \"Please do this task for me, child\"", "child: bye")
    child.close
  end

  # Not under valgrind: the responders are child processes, which valgrind does not check.
  it "spreads requests across two processes of one group, and each reply reaches the process that waits", valgrind: false do
    responders = 2.times.map { start_fixture("responder.rb", stream_name, "workers") }
    senders = 2.times.map { start_fixture("sender.rb", stream_name, "senders", "workers", 8, 50) }
    senders.each { |io| io.puts "go" }
    results = senders.map { |io| JSON.parse(io.gets) }
    results.each do |r|
      expect(r["error_count"]).to eq(0), r.inspect
      expect(r["wrong"]).to eq(0)
      expect(r["by_pid"].values.sum).to eq(400)
      expect(r["ledger"]).to eq(0)
    end
    pids = results.flat_map { |r| r["by_pid"].keys }.uniq.map(&:to_i)
    expect(pids).to match_array(responders.map(&:pid))
    # Acknowledgements trail the replies by a moment.
    eventually { raw_redis.xpending(stream_name, "workers")["size"].zero? && raw_redis.xpending(stream_name, "senders")["size"].zero? }
  end
end
