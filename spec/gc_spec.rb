# frozen_string_literal: true

require "spec_helper"

RSpec.describe "garbage collection", timeout: 180 do
  let(:stream_name) { unique("gc") }

  it "keeps working across GC.compact and compaction reference checks (in a process of its own)" do
    # See spec/fixtures/compaction.rb for why not in this process.
    io = start_fixture("compaction.rb", stream_name)
    expect(io.read).to include("ok 201")
    io.close
    expect($?.exitstatus).to eq(0)
  end

  # Not under valgrind, where a collection at every allocation makes this
  # take about two minutes; the TLS and sanitizer passes run it.
  it "keeps working under GC.stress", valgrind: false do
    connected_stream(stream_name, "echo")
    sender = connected_stream(stream_name, "sender")
    replies = []
    begin
      GC.stress = true
      3.times { |i| replies << sender.send_to_group(content: [i, "stress"], to: "echo", timeout: 120).content }
    ensure
      GC.stress = false
    end
    expect(replies).to eq([[0, "stress"], [1, "stress"], [2, "stress"]])
  end

  it "frees a connected stream that is dropped without disconnect" do
    before = Thread.list.size
    s = RedisIPC::Stream.new(stream_name, "dropped").on_request { nil }
    s.connect(redis_options: { url: redis_url })
    s.disconnect # the Ruby threads hold the stream; drop only the engine below
    engine = RedisIPC::Engine.new(stream_name, "raw", RedisIPC::RedisOptions.normalize(url: redis_url))
    engine.connect
    engine = nil # rubocop:disable Lint/UselessAssignment
    GC.start
    GC.start
    expect(Thread.list.size).to eq(before)
  end
end
