# frozen_string_literal: true

require "spec_helper"
require "json"
require "open3"
require "openssl"
require "tmpdir"

# Signed streams (ipc_signing.c), attacked by another process that writes
# raw entries and keys with its own Redis connection (fixtures/raw_writer.rb).
RSpec.describe "signed streams", timeout: 90 do
  let(:stream_name) { unique("signed") }
  let(:key) { "spec signing key 1" }

  before { skip "this build has no libcrypto" unless RedisIPC::Engine::SIGNING }

  after { finish_processes }

  def signed(*keys, **options)
    { signing: { keys: keys.empty? ? [key] : keys, **options } }
  end

  def attacker
    @attacker ||= start_fixture("raw_writer.rb", stream_name)
  end

  # Runs a raw command in the attacker's process; its reply.
  def attack(*command)
    attacker.puts(JSON.generate(command))
    JSON.parse(attacker.gets)
  end

  # The [field, value, ...] of the first entry for group with status, as
  # the attacker sees it (start the attacker before the entry is written).
  def capture(group, status)
    attacker.puts(JSON.generate({ capture: group, status: status }))
    JSON.parse(attacker.gets) || raise("the attacker saw no #{status} entry for #{group}")
  end

  # The signature as README "Signed streams" defines it, computed here
  # independently of the engine.
  def signature(key, stream, values, signed_at)
    input = ["redis_ipc signed entry 1", stream, *values, signed_at].map { |v| [v.bytesize].pack("Q>") + v.b }.join
    OpenSSL::HMAC.hexdigest("SHA256", key, input)
  end

  def server_ms
    seconds, micros = raw_redis.time
    ((seconds * 1_000_000 + micros) / 1000).to_s
  end

  def request_values(content)
    [SecureRandom.hex(10), "abc123", "pending", JSON.generate(content), "mallory", "workers"]
  end

  def fields(values, *extra)
    %w[id instance_id status content source_group destination_group].zip(values).flatten + extra
  end

  def errors_within(queue, count, within: 10)
    Timeout.timeout(within) { Array.new(count) { queue.pop } }
  end

  it "handles only entries signed with one of its keys; the others are reported, acknowledged and removed" do
    handled = Queue.new
    errors = Queue.new
    connected_stream(stream_name, "workers", errors: errors, **signed) do |e|
      handled << e.content
      fulfill_request(e, content: "ok")
    end
    now = server_ms
    unsigned = request_values("unsigned")
    wrong_key = request_values("wrong key")
    tampered = request_values("before")
    tampered_signature = signature(key, stream_name, tampered, now)
    tampered[3] = JSON.generate("after")
    other_stream = request_values("other stream")
    genuine = request_values("third party")
    forged = [
      fields(unsigned),
      fields(wrong_key, "signed_at", now, "signature", signature("guess", stream_name, wrong_key, now)),
      fields(tampered, "signed_at", now, "signature", tampered_signature),
      # Signed for another stream: the stream's name is signed too.
      fields(other_stream, "signed_at", now, "signature", signature(key, "#{stream_name}x", other_stream, now))
    ]
    ids = forged.map { |f| attack("XADD", stream_name, "*", *f) }
    # Written by code of its own, following the README: accepted.
    attack("XADD", stream_name, "*", *fields(genuine, "signed_at", now, "signature", signature(key, stream_name, genuine, now)))

    reported = errors_within(errors, 4)
    expect(reported).to all(be_a(RedisIPC::SignatureError))
    by_id = reported.to_h { |e| [e.message[/entry (\S+)/, 1], e.message] }
    expect(by_id.keys).to match_array(ids)
    expect(by_id[ids[0]]).to include("not signed")
    ids.drop(1).each { |id| expect(by_id[id]).to include("none of the signing keys") }
    expect(Timeout.timeout(5) { handled.pop }).to eq("third party")
    expect(handled).to be_empty
    eventually { ids.all? { |id| raw_redis.xrange(stream_name, id, id).empty? } }
  end

  it "signs every entry it writes with eight fields, the signature last, and the 1.x six first" do
    connected_stream(stream_name, "workers", **signed) do |e|
      sleep 0.3 # time for the attacker to see the request
      fulfill_request(e, content: "ok")
    end
    sender = connected_stream(stream_name, "senders", **signed)
    attacker
    pending = sender.send_to_group_async(content: "look", to: "workers")
    entry = capture("workers", "pending")
    names = entry.each_slice(2).map(&:first)
    expect(names).to eq(%w[id instance_id status content source_group destination_group signed_at signature])
    values = entry.each_slice(2).map(&:last)
    expect(values[7]).to eq(signature(key, stream_name, values[0, 6], values[6]))
    expect(Integer(values[6])).to be_within(5000).of(Integer(server_ms))
    expect(pending.value.content).to eq("ok")
  end

  it "handles a request written again within max_age once, whichever instance of the group reads the copy" do
    handled = Queue.new
    errors = Queue.new
    2.times do
      connected_stream(stream_name, "workers", errors: errors, **signed) do |e|
        handled << e.redelivered?
        sleep 0.3
        fulfill_request(e, content: "ok")
      end
    end
    sender = connected_stream(stream_name, "senders", **signed)
    attacker
    pending = sender.send_to_group_async(content: "once", to: "workers")
    copy = capture("workers", "pending")
    copies = Array.new(4) { attack("XADD", stream_name, "*", *copy) }
    expect(pending.value.content).to eq("ok")
    reported = errors_within(errors, 4)
    expect(reported).to all(be_a(RedisIPC::SignatureError).and(have_attributes(message: a_string_including("replay"))))
    # Whichever of the five entries an instance marked first runs (the same
    # request, answered to the same sender); the other four are refused.
    refused = reported.map { |e| e.message[/entry (\S+)/, 1] }
    expect(refused.uniq.size).to eq(4)
    expect((copies - refused).size).to be <= 1
    expect(handled.size).to eq(1)
    # The markers last as long as the window, then go.
    marker = "#{stream_name}:workers:seen:#{copy[1]}"
    expect(raw_redis.pttl(marker)).to be_between(1, 32_000)
  end

  # Not under valgrind: waits out max_age; the other signing examples reach its C paths.
  it "refuses a copy written after max_age, judged on the server's clock", valgrind: false do
    handled = Queue.new
    errors = Queue.new
    connected_stream(stream_name, "workers", errors: errors, **signed(key, max_age: 1)) do |e|
      handled << e.content
      sleep 0.3
      fulfill_request(e, content: "ok")
    end
    sender = connected_stream(stream_name, "senders", **signed(key, max_age: 1))
    attacker
    pending = sender.send_to_group_async(content: "late", to: "workers")
    copy = capture("workers", "pending")
    expect(pending.value.content).to eq("ok")
    sleep 1.2
    late = attack("XADD", stream_name, "*", *copy)
    error = errors_within(errors, 1).first
    expect(error).to be_a(RedisIPC::SignatureError)
    expect(error.message).to include(late, "longer than signing max_age")
    # An entry stamped in the past by someone with the key is just as late.
    values = request_values("stale")
    stale_at = (Integer(server_ms) - 5000).to_s
    stale = attack("XADD", stream_name, "*", *fields(values, "signed_at", stale_at, "signature", signature(key, stream_name, values, stale_at)))
    expect(errors_within(errors, 1).first.message).to include(stale, "longer than signing max_age")
    expect(handled.size).to eq(1)
  end

  it "rotates keys without downtime: the first key signs, every key verifies" do
    old_key = "old key"
    new_key = "new key"
    connected_stream(stream_name, "a", **signed(new_key, old_key)) { |e| fulfill_request(e, content: "a got #{e.content}") }
    b = connected_stream(stream_name, "b", **signed(old_key, new_key)) { |e| fulfill_request(e, content: "b got #{e.content}") }
    a_sender = connected_stream(stream_name, "a2", **signed(new_key, old_key))
    c = connected_stream(stream_name, "c", **signed(new_key))
    expect(b.send_to_group(content: 1, to: "a").content).to eq("a got 1")       # signed with the old key
    expect(a_sender.send_to_group(content: 2, to: "b").content).to eq("b got 2") # signed with the new key
    expect(c.send_to_group(content: 3, to: "a").content).to eq("a got 3")       # only the new key left
  end

  # The victim handles a slow request; the attacker then makes it look dead
  # (its heartbeat score 0, its consumers list gone) while a second instance
  # of the group watches. Returns whether the second instance ran the request.
  def forged_death_moves_request?(env)
    env = env.merge("RESPONDER_LOG" => "1")
    victim = start_fixture("responder.rb", stream_name, "workers", 6, env: env)
    sender_options = env["RESPONDER_SIGNING_KEYS"] ? signed : {}
    sender = connected_stream(stream_name, "senders", **sender_options)
    pending = sender.send_to_group_async(content: "slow", to: "workers", timeout: 20)
    expect(victim.gets).to start_with("handled")
    other = start_fixture("responder.rb", stream_name, "workers", 0, env: env)
    attacker
    deadline = monotonic + 3.5 # the other instance judges after dead_after (1.3 s) of its own prompt beats
    moved = false
    until moved || monotonic > deadline
      attack("ZADD", "#{stream_name}:workers:instances", "0", victim.instance_id)
      attack("DEL", "#{stream_name}:workers:#{victim.instance_id}:consumers")
      moved = other.wait_readable(0.05) && other.gets.to_s.start_with?("handled")
    end
    return true if moved

    reply = pending.value
    expect(reply.content).to include(pid: victim.pid, redelivered: false)
    expect(other.wait_readable(0)).to be_falsy
    false
  end

  # Not under valgrind: waits for forged deaths to be judged; the other signing examples reach its C paths.
  it "moves nothing from a live instance for a forged heartbeat or membership change", valgrind: false do
    expect(forged_death_moves_request?("RESPONDER_SIGNING_KEYS" => key)).to be(false)
  end

  it "(unsigned, the same attack moves a live instance's request: what signing defends)", valgrind: false do
    expect(forged_death_moves_request?({})).to be(true)
  end

  # Not under valgrind: the instance killed and the one taking over are child processes, which valgrind does not check.
  it "still takes over from an instance killed with -9: its request is handled by another, redelivered", valgrind: false do
    env = { "RESPONDER_SIGNING_KEYS" => key, "RESPONDER_LOG" => "1" }
    victim = start_fixture("responder.rb", stream_name, "workers", 30, env: env)
    sender = connected_stream(stream_name, "senders", **signed)
    pending = sender.send_to_group_async(content: "dies", to: "workers", timeout: 20)
    expect(victim.gets).to start_with("handled")
    other = start_fixture("responder.rb", stream_name, "workers", 0, env: env)
    Process.kill(:KILL, victim.pid)
    reply = pending.value
    expect(reply.content).to include(pid: other.pid, redelivered: true)
  end

  it "keeps keys out of errors and inspect, and checks its options" do
    secret = "TopSecretKey42"
    stream = RedisIPC::Stream.new(stream_name, "g")
    stream.on_request { |_| nil }
    bad = [
      { keys: [] }, { keys: secret }, { keys: [secret, 42] }, { keys: [secret * 100] }, { keys: [""] },
      { keys: [secret], max_age: 0 }, { keys: [secret], max_age: 86_401 }, { keys: [secret], ttl: 1 }, [secret]
    ]
    bad.each do |signing|
      expect { stream.connect(redis_options: { url: redis_url }, signing: signing) }
        .to raise_error(ArgumentError) { |e| expect(e.message).not_to include(secret) }
    end
    options = RedisIPC::ConnectOptions.new(signing: { keys: [secret, "other"] })
    expect(options.inspect).not_to include(secret)
    expect(options.inspect).to include("signing_keys=(2 keys)")
    stream.connect(redis_options: { url: redis_url }, signing: { keys: [secret] })
    expect(stream.inspect).not_to include(secret)
    stream.disconnect
  end

  describe "as a Redis user with the README's rule and its line for signed streams" do
    before { @users = [] }

    after { @users.each { |user| raw_redis.call("ACL", "DELUSER", user) } }

    def acl_user(without: [])
      readme = File.read(File.expand_path("../README.md", __dir__))
      lines = readme.scan(/^ACL SETUSER ipc .*$/)
      expect(lines.size).to eq(2)
      rule = lines.flat_map { |line| line.split.drop(3).map { |word| word.gsub("mystream", stream_name) } } - without
      name = unique("ipc")
      raw_redis.call("ACL", "SETUSER", name, *rule)
      @users << name
      { url: redis_url, username: name, password: "secret" }
    end

    it "runs a signed round trip, and connect names what the user lacks" do
      user = acl_user
      streams = %w[echo senders].map do |group|
        stream = RedisIPC::Stream.new(stream_name, group)
        stream.on_request { |e| fulfill_request(e, content: e.content) }
        (@streams ||= []) << stream.connect(redis_options: user, **signed)
        stream
      end
      expect(streams.last.send_to_group(content: "hi", to: "echo").content).to eq("hi")
      { "+set" => "SET", "+pubsub|numsub" => "PUBSUB NUMSUB", "~#{stream_name}:*:seen:*" => "seen" }.each do |word, named|
        stream = RedisIPC::Stream.new(stream_name, "echo")
        stream.on_request { |_| nil }
        expect { stream.connect(redis_options: acl_user(without: [word]), **signed) }
          .to raise_error(RedisIPC::CommandError, /#{Regexp.escape(named)}/)
      end
    end
  end

  describe "redis-ipc" do
    before(:all) { @build = SpecHelpers.make_c_programs }

    let(:cli) { File.join(@build, "redis-ipc") }

    it "takes keys from --signing-key-file or REDIS_IPC_SIGNING_KEYS, one per line, and never prints them" do
      connected_stream(stream_name, "ruby", **signed("newer", key)) { |e| fulfill_request(e, content: { "echo" => e.content }) }
      Dir.mktmpdir do |dir|
        file = File.join(dir, "keys")
        File.write(file, "#{key}\r\nnewer\n\n")
        args = ["send", "--stream", stream_name, "--group", "shell", "--to", "ruby"]
        out, err, status = Open3.capture3({ "REDIS_URL" => redis_url }, cli, *args, "--signing-key-file", file, "1")
        expect([out, status.exitstatus]).to eq(["{\"echo\":1}\n", 0]), err
        out, err, status = Open3.capture3({ "REDIS_URL" => redis_url, "REDIS_IPC_SIGNING_KEYS" => "newer" }, cli, *args, "2")
        expect([out, status.exitstatus]).to eq(["{\"echo\":2}\n", 0]), err
        # Unsigned: the Ruby group refuses it, the tool times out.
        _, err, status = Open3.capture3({ "REDIS_URL" => redis_url }, cli, *args, "--timeout", "0.5", "3")
        expect(status.exitstatus).to eq(2), err
        _, err, status = Open3.capture3({ "REDIS_URL" => redis_url }, cli, *args, "--signing-key-file", File.join(dir, "none"), "4")
        expect([status.exitstatus, err]).to match([64, a_string_including("--signing-key-file")])
        File.write(file, "\n")
        _, err, status = Open3.capture3({ "REDIS_URL" => redis_url }, cli, *args, "--signing-key-file", file, "5")
        expect([status.exitstatus, err]).to match([64, a_string_including("no key")])
        expect(err).not_to include(key)
      end
    end
  end
end
