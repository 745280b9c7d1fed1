# frozen_string_literal: true

require "spec_helper"

# The ACL rule of the README ("Least privilege"), for a stream of this
# spec: everything works as that user, and each permission taken away is
# named by connect.
RSpec.describe "the least-privilege ACL rule", timeout: 120 do
  let(:stream_name) { unique("acl") }

  before { @users = [] }

  after do
    @users.each { |user| raw_redis.call("ACL", "DELUSER", user) }
  end

  # The README's rule for our stream, as ACL SETUSER arguments after the name.
  def readme_rule
    line = File.read(File.expand_path("../README.md", __dir__))[/^ACL SETUSER ipc .*$/]
    raise "README has no ACL SETUSER line" unless line

    line.split.drop(3).map { |word| word.gsub("mystream", stream_name) }
  end

  # A user made with the README's rule, except the words left out.
  def acl_user(without: [])
    name = unique("ipc")
    rule = readme_rule - without
    raw_redis.call("ACL", "SETUSER", name, *rule)
    @users << name
    { url: redis_url, username: name, password: "secret" }
  end

  def stream_as(user, group, errors: nil, &handler)
    s = RedisIPC::Stream.new(stream_name, group)
    s.on_request(&(handler || proc { |e| fulfill_request(e, content: e.content) }))
    s.on_error { |e| errors << e } if errors
    s.connect(redis_options: user)
    (@streams ||= []) << s
    s
  end

  it "is written in the README, for one stream" do
    expect(readme_rule).to include("-@all", "+xreadgroup", "~#{stream_name}", "&#{stream_name}:*:wake")
  end

  it "runs a round trip, a reclaim and a takeover as a user with exactly that rule" do
    user = acl_user
    errors = Queue.new
    stream_as(user, "echo", errors: errors)
    sender = stream_as(user, "senders", errors: errors)
    expect(sender.send_to_group(content: "hi", to: "echo", timeout: 5).content).to eq("hi")
    answer = proc { |e| fulfill_request(e, content: { echo: e.content, redelivered: e.redelivered? }) }

    # Reclaim: a consumer of the group that is not an instance of this gem
    # (a 1.x peer, played with the default user) takes a request and goes
    # quiet; after 10 s idle an instance of the group answers it.
    raw_redis.xgroup(:create, stream_name, "workers", "$")
    # (fail_fast: false: the legacy consumer does not exist until it reads)
    stalled = sender.send_to_group_async(content: "r", to: "workers", timeout: 30, fail_fast: false)
    eventually(within: 5) do
      read = raw_redis.xreadgroup("workers", "legacy_consumer", stream_name, ">", count: 10)
      read&.dig(stream_name)&.any? { |_, f| f["content"] == '"r"' }
    end
    reclaimer = stream_as(user, "workers", errors: errors, &answer)
    expect(stalled.value.content).to include(echo: "r")
    reclaimer.disconnect

    # Takeover: an instance of the group, in a process of its own and as the
    # same user, takes requests and dies (kill -9) holding them; another
    # instance, started meanwhile, takes them over.
    victim = start_fixture("responder.rb", stream_name, "workers", 30,
                           env: { "RESPONDER_USERNAME" => user[:username], "RESPONDER_PASSWORD" => "secret" })
    pending = Array.new(8) { |i| sender.send_to_group_async(content: "t#{i}", to: "workers", timeout: 20) }
    # The requests pending on the victim's consumers (its handler sleeps 30 s).
    # (on the shared stream or the group's requests lane: docs/wire.md, section 7)
    held_by_victim = lambda do
      [stream_name, "#{stream_name}:workers:requests"].sum do |key|
        raw_redis.xpending(key, "workers", "-", "+", 100).count do |p|
          next false unless p["consumer"].include?("_#{victim.instance_id}_")

          _, fields = raw_redis.xrange(key, p["entry_id"], p["entry_id"]).first
          fields && fields["status"] == "pending" && fields["destination_group"] == "workers"
        end
      end
    end
    eventually(within: 10) { held_by_victim.call == 8 }
    stream_as(user, "workers", errors: errors, &answer)
    Process.kill(:KILL, victim.pid)
    replies = pending.map { |p| p.value.content }
    expect(replies.map { |r| r[:echo] }).to eq(Array.new(8) { |i| "t#{i}" })
    expect(replies.count { |r| r[:redelivered] }).to eq(8)
    expect(errors.size).to eq(0), -> { errors.pop.inspect }
  end

  # Words of the rule the gem can do without (README).
  OPTIONAL = %w[+multi +discard +client|id +client|unblock].freeze

  it "makes connect name each command taken away" do
    commands = readme_rule.grep(/\A\+/) - OPTIONAL
    expect(commands.size).to be > 25
    commands.each do |word|
      stream = RedisIPC::Stream.new(stream_name, "workers").on_request { nil }
      label = word.delete_prefix("+").upcase.tr("|", " ")
      expect { stream.connect(redis_options: acl_user(without: [word])) }
        .to raise_error(RedisIPC::CommandError, /command #{Regexp.escape(label)}\b/), "without #{word}"
    end
    expect(raw_redis.keys("#{stream_name}*")).to eq([])
  end

  it "works without the optional permissions, and names the stream's key or channel when a pattern is missing" do
    user = acl_user(without: OPTIONAL)
    stream_as(user, "workers")
    expect(stream_as(user, "senders").send_to_group(content: 1, to: "workers").content).to eq(1)
    %W[~#{stream_name}:*:instances ~#{stream_name}:*:metrics ~#{stream_name}:*:requests ~#{stream_name}:*:replies &#{stream_name}:*:wake]
      .zip([/key "#{stream_name}:workers:instances"/, /key "#{stream_name}:workers:\h+:metrics"/, /key "#{stream_name}:workers:requests"/,
            /key "#{stream_name}:workers:\h+:replies"/, /channel "#{stream_name}:workers:\h+:wake"/])
      .each do |word, named|
      stream = RedisIPC::Stream.new(stream_name, "workers").on_request { nil }
      expect { stream.connect(redis_options: acl_user(without: [word])) }.to raise_error(RedisIPC::CommandError, named)
    end
  end
end
