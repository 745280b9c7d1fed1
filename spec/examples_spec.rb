# frozen_string_literal: true

require "spec_helper"

# Every program of examples/ runs against the suite's redis-server
# (REDIS_URL) and says what it should.
RSpec.describe "examples/", timeout: 90 do
  def run_example(path)
    io = ruby_process(File.expand_path("../examples/#{path}", __dir__))
    io.close_write
    output = io.read
    io.close
    [output, $?]
  end

  it "rpc_service.rb: an object's methods served over a group, called through a proxy" do
    output, status = run_example("rpc_service.rb")
    expect(status).to be_success, output
    expect(output.lines.map(&:chomp)).to eq([
      "apples: 3",
      "took 2 apples, 1 left",
      "refused: ArgumentError: only 1 apple(s) left",
      "refused: KeyError: no such item: plum",
      "refused: NoMethodError: inventory has no method destroy_all"
    ])
  end

  it "worker_pool.rb: several processes in one group share the jobs" do
    output, status = run_example("worker_pool.rb")
    expect(status).to be_success, output
    expect(output).to include("3 workers ready", "workers stopped: 3")
    expect(output).to match(/^60 jobs answered, 0 wrong, by [1-3] worker\(s\): /)
  end

  it "fan_out.rb: many requests in flight from one thread, and one question to several groups" do
    output, status = run_example("fan_out.rb")
    expect(status).to be_success, output
    expect(output).to match(%r{^weather: 50/50 answered in })
    expect(output).to include("weather: weather for Lyon", "news: news for Lyon", "stocks: stocks for Lyon",
                              "sports: nobody serves it")
  end

  it "rails_initializer.rb: a stream per process, connected on first use, across forks" do
    # GCC 12's AddressSanitizer allocator takes no locks around fork, and
    # these forked workers exit normally, running Ruby's teardown (see
    # faults_spec.rb); the plain and valgrind runs cover this example.
    skip "fork of a threaded process under ASan" if ENV["REDIS_IPC_SPEC_LIB"]
    output, status = run_example("rails_initializer.rb")
    expect(status).to be_success, output
    expect(output).to include("master: invoice for order 1", "master still serving: true")
    expect(output).to include("worker 1: connected before first use: false; own instance: true; invoice for order 10",
                              "worker 2: connected before first use: false; own instance: true; invoice for order 11")
    expect(output).to include("(event send.redis_ipc to billing: ")
  end

  it "household/run.rb: the child/parent example of bin/demo" do
    output, status = run_example("household/run.rb")
    expect(status).to be_success, output
    expect(output).to include("child: ready").and match(/^demo: the parent exited with [01] /)
  end
end
