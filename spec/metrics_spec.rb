# frozen_string_literal: true

require "spec_helper"

# Stream#stats and #prometheus_text after traffic whose outcome is known,
# and the snapshot each instance publishes at its heartbeat.
RSpec.describe "metrics", timeout: 60 do
  let(:stream_name) { unique("metrics") }

  # A Prometheus text exposition: { [name, labels] => value }, checking the
  # format as it goes (one HELP and TYPE per family, before its samples).
  def parse_prometheus(text)
    types = {}
    samples = {}
    text.each_line(chomp: true) do |line|
      case line
      when /\A# HELP (\w+) \S/ then nil
      when /\A# TYPE (\w+) (counter|gauge)\z/
        raise "TYPE #{Regexp.last_match(1)} twice" if types.key?(Regexp.last_match(1))

        types[Regexp.last_match(1)] = Regexp.last_match(2)
      when /\A(\w+)\{((?:\w+="(?:[^"\\]|\\.)*",?)*)\} (\S+)\z/
        name, labels, value = Regexp.last_match.captures
        raise "sample of #{name} before its TYPE" unless types.key?(name)

        labels = labels.scan(/(\w+)="((?:[^"\\]|\\.)*)"/).to_h
        samples[[name, labels]] = Float(value)
      else
        raise "not Prometheus text: #{line.inspect}"
      end
    end
    samples
  end

  it "counts sends, answers, outcomes, errors by class and timeouts, and measures latency" do
    errors = Queue.new
    gate = Queue.new
    server = connected_stream(stream_name, "server", errors: errors) do |entry|
      case entry.content
      when "slow"
        gate.pop
        fulfill_request(entry, content: "late")
      when "no" then reject_request(entry, content: "refused")
      when "boom" then raise ArgumentError, "boom"
      else
        sleep 0.02
        fulfill_request(entry, content: entry.content)
      end
    end
    client = connected_stream(stream_name, "client")
    5.times { |i| expect(client.send_to_group(content: i, to: "server")).to be_fulfilled }
    2.times { expect(client.send_to_group(content: "no", to: "server")).to be_rejected }
    expect(client.send_to_group(content: "boom", to: "server")).to be_rejected
    expect { client.send_to_group(content: "slow", to: "server", timeout: 0.3) }.to raise_error(RedisIPC::TimeoutError)
    expect { client.send_to_group(content: 1, to: "nobody") }.to raise_error(RedisIPC::NoRespondersError)

    # The slow request holds a handler: the gauges see it.
    pending = client.send_to_group_async(content: "slow", to: "server", timeout: 10)
    eventually { server.stats[:consumers_busy] == 2 && client.stats[:in_flight] == 1 }
    2.times { gate << true }
    expect(pending.value).to be_fulfilled

    # The reply that came after its sender gave up is reported (a MalformedEntryError) and counted.
    eventually { client.stats[:errors]["malformed"] == 1 }
    sent = client.stats
    expect(sent).to include(sent: 10, replies_fulfilled: 6, replies_rejected: 3, timed_out: 1, received: 0, in_flight: 0,
                            errors: { "RedisIPC::NoRespondersError" => 1, "malformed" => 1 })
    handled = server.stats
    expect(handled).to include(received: 10, fulfilled: 7, rejected: 3, redelivered: 0, sent: 0, queued: 0,
                               consumers_busy: 0, errors: { "ArgumentError" => 1 })
    expect(errors.pop).to be_a(ArgumentError)

    # 20 ms handlers: within the buckets' 6 % (and what a busy machine adds).
    expect(handled[:latency][:handler]).to include(samples: 10)
    expect(handled[:latency][:handler][:p50]).to be_between(0.0188, 0.2)
    expect(sent[:latency][:round_trip][:samples]).to eq(9)
    expect(sent[:latency][:round_trip][:p50]).to be >= 0.0188
    expect(sent[:latency][:round_trip][:p99]).to be >= sent[:latency][:round_trip][:p50]
    expect(sent[:latency][:handler]).to eq(p50: nil, p90: nil, p99: nil, samples: 0)
  end

  it "gives the Prometheus text format, labelled with the stream, group and instance" do
    server = connected_stream(stream_name, "server")
    client = connected_stream(stream_name, "client")
    3.times { client.send_to_group(content: 1, to: "server") }
    samples = parse_prometheus(client.prometheus_text)
    labels = { "stream" => stream_name, "group" => "client", "instance" => client.instance_id }
    expect(samples[["redis_ipc_requests_sent_total", labels]]).to eq(3)
    expect(samples[["redis_ipc_replies_total", labels.merge("status" => "fulfilled")]]).to eq(3)
    expect(samples[["redis_ipc_round_trip_seconds", labels.merge("quantile" => "0.99")]]).to be > 0
    expect(samples.keys.map(&:first)).not_to include("redis_ipc_handler_seconds") # nothing measured
    served = parse_prometheus(server.prometheus_text)
    expect(served[["redis_ipc_requests_answered_total", labels.merge("group" => "server", "instance" => server.instance_id, "status" => "fulfilled")]]).to eq(3)
    server.disconnect
    expect(server.prometheus_text).to eq("")
    expect(server.stats).to include(sent: 0, received: 0, errors: {})
  end

  # Not under valgrind: waits for heartbeats and the snapshot's expiry; other examples reach its C paths.
  it "publishes a bounded snapshot at each heartbeat, under the stream's prefix, that expires with the instance", valgrind: false do
    server = connected_stream(stream_name, "server", takeover: { heartbeat_interval: 0.1, dead_after: 0.5 })
    client = connected_stream(stream_name, "client")
    key = "#{stream_name}:server:#{server.instance_id}:metrics"
    20.times { client.send_to_group(content: "x" * 100, to: "server") }
    # Unknown classes past the table's size fold into "other": the snapshot stays small.
    40.times { |i| server.instance_variable_get(:@engine).note_error("Error#{i}" * 8) }
    snapshot = eventually { (line = raw_redis.get(key)) && line.include?("received=20") && line }
    expect(snapshot).to start_with("ripc-metrics/1 ")
    expect(snapshot.bytesize).to be < 2048
    expect(server.stats[:errors].size).to eq(16)
    expect(server.stats[:errors]["other"]).to eq(25)
    expect(raw_redis.pttl(key)).to be_between(1, 1500)
    server.disconnect
    eventually(within: 3) { !raw_redis.exists?(key) }
  end
end
