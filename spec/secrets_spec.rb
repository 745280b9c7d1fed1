# frozen_string_literal: true

require "spec_helper"
require "logger"
require "pp"
require "stringio"
require_relative "support/cli_tool"

# A password goes through every path that could show it (bad urls, failed
# and working connections, reconnects, inspect, logs, the CLI's messages
# and stats) and is never seen: urls are shown with it replaced.
RSpec.describe "secrets", timeout: 60 do
  include CLITool

  let(:stream_name) { unique("secrets") }
  let(:password) { "Top#{secret}" }

  # The tail of every password below: no message may hold it.
  def secret = "Secret42"

  before { @users = [] }

  after do
    @users.each { |user| raw_redis.call("ACL", "DELUSER", user) }
  end

  def user_with_password
    name = unique("secret_user")
    raw_redis.call("ACL", "SETUSER", name, "on", ">#{password}", "~*", "&*", "+@all")
    @users << name
    name
  end

  def expect_no_secret(*texts)
    texts.each { |text| expect(text.to_s).not_to include(secret), "leaked in: #{text}" }
  end

  # The suite's server as a url that carries user and password, when it has a TCP one.
  def url_with(user, pass)
    return redis_url.sub("://", "://#{user}:#{pass}@") if redis_url.match?(%r{\Arediss?://})
    skip "the suite's server has no TCP url here" unless $redis_server

    "redis://#{user}:#{pass}@127.0.0.1:#{$redis_server.port}"
  end

  bad_urls = ["rediss+x://:TopSecret42@h:6379", "http://u:TopSecret42@h", "redis://:Top Secret42@h",
              "redis://:TopSecret42%zz@h", "redis://u:TopSecret42@h/abc", "redis://u:TopSecret42@h?db=x",
              "redis://u:Top%53ecret42@h:abc", "redis://u:TopSecret42@h:99999", "redis://:TopSecret42@@h",
              "u:TopSecret42@h:6379", "redis://u:p@ss:TopSecret42@h"]

  describe "in Ruby" do
    around { |example| without_redis_url { example.run } }

    it "never shows a url's password in an ArgumentError, from url: or REDIS_URL" do
      bad_urls.each do |url|
        error = (RedisIPC::Stream.new(stream_name, "g").on_request { nil }.connect(redis_options: { url: url }) rescue $!)
        expect(error).to be_a(ArgumentError), "#{url}: #{error.inspect}"
        expect_no_secret(error.message, error.full_message, error.inspect)
        ENV["REDIS_URL"] = url
        error = (RedisIPC::Stream.new(stream_name, "g").on_request { nil }.connect rescue $!)
        expect(error).to be_a(ArgumentError)
        expect_no_secret(error.message)
      end
      expect { RedisIPC::RedisOptions.normalize(url: "rediss+x://:TopSecret42@h") }
        .to raise_error(ArgumentError, 'redis_options url must start with redis://, rediss:// or unix://, got "rediss+x://:REDACTED@h"')
    end

    it "never shows a sentinel's password or a cluster node url's password" do
      closed = TCPServer.new("127.0.0.1", 0).then { |t| t.addr[1].tap { t.close } }
      attempts = [
        { sentinels: [{ host: "127.0.0.1", port: closed }], name: "m", sentinel_password: password, password: password },
        { nodes: ["redis://:#{password}@127.0.0.1:#{closed}"] },
        { nodes: ["redis://:#{password}@127.0.0.1:#{closed}", "redis://u:#{password}@bad host:1"] },
      ]
      attempts.each do |redis_options|
        stream = RedisIPC::Stream.new("{#{stream_name}}", "g").on_request { |e| fulfill_request(e, content: "") }
        error = (stream.connect(redis_options: redis_options) rescue $!)
        expect(error).to be_a(RedisIPC::Error).or be_a(ArgumentError)
        config = RedisIPC::ConnectOptions.new(redis_options: redis_options) rescue nil
        expect_no_secret(error.message, error.full_message, stream.inspect, config.inspect)
      end
    end

    it "never shows it connected, in inspect, logs or errors, nor after a failed connect or reconnect" do
      user = user_with_password
      log = StringIO.new
      errors = Queue.new
      stream = connected_stream(stream_name, "g", errors: errors, logger: Logger.new(log),
                                                  redis_options: { url: redis_url, username: user, password: password })
      expect(stream.send_to_group(content: 1, to: "g").content).to eq(1)
      config = stream.instance_variable_get(:@config)
      missing = (config.no_such_method rescue $!)
      expect(config.inspect).to include(":password=>\"REDACTED\"", "pool_size=")
      expect_no_secret(stream.inspect, stream.pretty_inspect, config.inspect, config.pretty_inspect, missing.message,
                       stream.instance_variable_get(:@engine).inspect)

      # Its connections are cut and the password changed: every reconnect
      # fails (reported once, with the outage's first cause).
      raw_redis.call("ACL", "SETUSER", user, "resetpass", ">Other#{secret}")
      raw_redis.call("CLIENT", "KILL", "USER", user)
      seen = [Timeout.timeout(15) { errors.pop }]
      stream.disconnect

      wrong = RedisIPC::Stream.new(stream_name, "g").on_request { nil }
      error = (wrong.connect(logger: Logger.new(log), redis_options: { url: redis_url, username: user, password: password }) rescue $!)
      expect([error.class, error.message]).to match([RedisIPC::ConnectionError, /WRONGPASS/])
      expect_no_secret(error.message, error.full_message, wrong.inspect, log.string, *seen.map(&:message))
      expect(log.string).to include("connected to #{stream_name}")
    end
  end

  describe "in the redis-ipc tool" do
    let(:send_args) { ["send", "--stream", stream_name, "--group", "shell", "--to", "g"] }

    it "shows a bad url without its password, from --url or REDIS_URL" do
      bad_urls.each do |url|
        _, err, status = run_cli(*send_args, "--url", url, "1")
        expect_no_secret(err)
        expect(status.exitstatus).to eq(64).or eq(3) # some parse, then cannot connect
        _, err, = run_cli(*send_args, "1", env: { "REDIS_URL" => url })
        expect_no_secret(err)
      end
      _, err, = run_cli(*send_args, "--url", "rediss+x://:TopSecret42@h:6379", "1")
      expect(err).to eq("redis-ipc: invalid Redis url rediss+x://:REDACTED@h:6379: it must start with redis://, rediss:// or unix://\n")
    end

    it "takes the password from REDISCLI_AUTH, never shows a wrong one, and keeps it out of stats" do
      user = user_with_password
      connected_stream(stream_name, "g")
      out, err, status = run_cli(*send_args, "--user", user, "7", env: { "REDISCLI_AUTH" => password })
      expect([out, err, status.exitstatus]).to eq(["7\n", "", 0])
      # An explicit --password wins over REDISCLI_AUTH, as in redis-cli.
      out, _, status = run_cli(*send_args, "--user", user, "--password", password, "8", env: { "REDISCLI_AUTH" => "Wrong#{secret}" })
      expect([out, status.exitstatus]).to eq(["8\n", 0])
      out, err, = run_cli("stats", "--stream", stream_name, "--user", user, env: { "REDISCLI_AUTH" => password })
      expect(out).to include("group g")
      expect_no_secret(out, err)

      wrong = { "REDISCLI_AUTH" => "Wrong#{secret}" }
      [[*send_args, "--user", user], ["stats", "--stream", stream_name, "--user", user],
       ["serve", "--stream", stream_name, "--group", "x", "--user", user, "--echo"]].each do |args|
        operands = args.first == "send" ? ["1"] : []
        out, err, status = run_cli(*args, *operands, env: wrong)
        expect([status.exitstatus, err]).to match([3, /WRONGPASS/]), "#{args.first}: #{err}"
        expect_no_secret(out, err)
        out, err, status = run_cli(*args, "--url", url_with(user, "Wrong#{secret}"), *operands)
        expect([status.exitstatus, err]).to match([3, /WRONGPASS/])
        expect_no_secret(out, err)
      end
      out, = run_cli("send", "--help")
      expect(out).to include("REDISCLI_AUTH")
    end
  end
end
