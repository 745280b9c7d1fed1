# frozen_string_literal: true

require "spec_helper"

# What one read may hold: about 4 x max_content_bytes, whatever is written
# to the stream. A read of new entries that brings more is abandoned, and
# its entries are read again as history through a script that measures
# them in Redis first (ipc_scripts.c): one too large is never sent whole.
# Not under valgrind: the bounded instance is a child process, which
# valgrind does not check, and 32 MB entries take this one 40 s there.
RSpec.describe "the byte bound on reads", timeout: 180, valgrind: false do
  let(:stream_name) { unique("bound") }
  let(:max_content_bytes) { 64 * 1024 }
  let(:huge) { 32 * 1024 * 1024 }

  after do
    raw_redis.del(stream_name)
  end

  def status_kb(pid, field)
    File.read("/proc/#{pid}/status")[/#{field}:\s+(\d+)/, 1].to_i
  end

  def raw_request(group, content, id)
    raw_redis.xadd(stream_name, { id: id, instance_id: "f100d0", status: "pending", content: content,
                                  source_group: "foreign", destination_group: group })
  end

  it "never holds an entry far over max_content_bytes, for another group or for its own, and keeps serving" do
    responder = start_fixture("responder.rb", stream_name, "workers",
                              env: { "RESPONDER_MAX_CONTENT_BYTES" => max_content_bytes.to_s })
    raw_redis.xgroup(:create, stream_name, "others", "$", mkstream: true)
    sender = connected_stream(stream_name, "senders")
    expect(sender.send_to_group(content: "warm", to: "workers", timeout: 5).content).to include(echo: "warm")
    File.write("/proc/#{responder.pid}/clear_refs", "5") # peak RSS from here
    base = status_kb(responder.pid, "VmHWM")

    # 32 MB entries: four for another group, one request for the responder's.
    content = JSON.generate("x" * huge)
    4.times { |i| raw_request("others", content, format("%021x", i)) }
    raw_request("workers", content, "oversize-request-01")
    # A request after them is answered: the responder kept serving.
    reply = sender.send_to_group(content: "after", to: "workers", timeout: 20)
    expect(reply.content).to include(echo: "after")

    # The oversized request was rejected with the reason, from what Redis
    # measured; its entry and the others' are acknowledged by the group.
    rejection = eventually(within: 20) do
      raw_redis.xrange(stream_name, "-", "+").map(&:last).find { |f| f["id"] == "oversize-request-01" && f["status"] == "rejected" }
    end
    expect(rejection["content"]).to include("over max_content_bytes")
    eventually(within: 20) { raw_redis.xpending(stream_name, "workers")["size"].zero? }

    peak = status_kb(responder.pid, "VmHWM")
    puts "\n    five 32 MB entries read by an instance with max_content_bytes 64 KB: peak RSS +#{(peak - base) / 1024} MB"
    # Reading one of them whole would take 32 MB at least (64 with its copy).
    expect(peak - base).to be < 24 * 1024
    Process.kill(:TERM, responder.pid) # its stdout is not read further
  end
end
