# frozen_string_literal: true

require "spec_helper"

# A reply counts only when it answers a request this instance sent and
# comes from the group that request was addressed to (ipc_ledger.c).
RSpec.describe "authentic replies", timeout: 60 do
  let(:stream_name) { unique("forgery") }


  it "ignores and reports a reply from a group the request was not sent to, written by another process" do
    connected_stream(stream_name, "workers") do |entry|
      sleep 0.5 # time for the forgery to arrive first
      fulfill_request(entry, content: "genuine from #{entry.content}")
    end
    errors = Queue.new
    sender = connected_stream(stream_name, "senders", errors: errors)
    forger = start_fixture("forger.rb", stream_name, "workers", "mallory")

    reply = sender.send_to_group(content: "ask", to: "workers", timeout: 5)
    expect(reply.content).to eq("genuine from ask")
    forged_key, forged_id = forger.gets.to_s[/\Aforged (\S+ \S+)/, 1]&.split
    expect(forged_id).not_to be_nil

    error = Timeout.timeout(5) { errors.pop }
    expect(error).to be_a(RedisIPC::MalformedEntryError)
    expect(error.message).to include(forged_id).and include("mallory").and include("not sent")
    # Removed like any garbage addressed to the sender's group.
    eventually { raw_redis.xrange(forged_key, forged_id, forged_id).empty? }
  end
end
