# frozen_string_literal: true

require "spec_helper"
require "open3"

# TLS against real redis-servers started with a TLS port: one that takes
# any client, one that demands a client certificate. The certificates are
# the suite's ($tls_certificates, spec/support/tls_certificates.rb).
RSpec.describe "TLS", timeout: 120 do
  certs = $tls_certificates
  let(:certs) { certs }
  let(:stream_name) { unique("tls") }
  let(:password) { "pw-#{SecureRandom.hex(6)}" }

  before(:all) do
    skip "this build has no TLS" unless RedisIPC::Engine::TLS
    @tls_server = RedisServer.new(tls: $tls_certificates).start
    @client_cert_server = RedisServer.new(tls: $tls_certificates, client_certs: true).start
  end

  after(:all) do
    @tls_server&.stop
    @client_cert_server&.stop
  end

  let(:tls_server) { @tls_server }
  let(:tls_url) { tls_server.tls_url }
  let(:trusting) { { ssl_params: { ca_file: certs.ca_file } } }

  def echo_stream(group, **redis_options)
    s = RedisIPC::Stream.new(stream_name, group)
    s.on_request { |e| fulfill_request(e, content: e.content) }
    s.connect(redis_options: redis_options, ledger: { entry_timeout: 5 })
    (@streams ||= []) << s
    s
  end

  # The error connect raises with these options, and how long it took.
  def connect_error(**redis_options)
    s = RedisIPC::Stream.new(stream_name, "failing").on_request { nil }
    started = monotonic
    s.connect(redis_options: { connect_timeout: 0.5 }.merge(redis_options))
    (@streams ||= []) << s
    raise "connected with #{redis_options.inspect}"
  rescue RedisIPC::Error => e
    [e, monotonic - started]
  end

  # The connect timeout bounds the waits; under valgrind the handshake's
  # own arithmetic (and loading the system's CA store) takes a while more.
  def connect_budget(seconds)
    File.read("/proc/self/maps").include?("vgpreload") ? seconds * 6 : seconds
  end

  # The local ports of the server's clients, from CLIENT LIST on its plain unix socket.
  def client_ports(server)
    Redis.new(path: server.socket).call("CLIENT", "LIST").lines.map { |l| l[/laddr=\S+:(\d+)/, 1].to_i }
  end

  describe "from Ruby" do
    it "makes round trips over rediss:// with ssl_params ca_file, and every connection of the engine is TLS" do
      responder = echo_stream("echo", url: tls_url, **trusting)
      sender = echo_stream("sender", url: tls_url, **trusting)
      replies = Array.new(20) { |i| sender.send_to_group(content: { n: i }, to: "echo").content }
      expect(replies).to eq(Array.new(20) { |i| { n: i } })
      # Dispatchers, the command pool, the service thread and the waker's
      # subscriber: all on the TLS port, none in plain text.
      ports = client_ports(tls_server)
      expect(ports.count(tls_server.tls_port)).to be >= 4
      expect(ports).not_to include(tls_server.port)
      expect(responder).to be_connected
    end

    it "takes ssl: true with host and port, ca_path, and REDIS_URL=rediss:// in another process" do
      echo_stream("echo", host: "127.0.0.1", port: tls_server.tls_port, ssl: true, ssl_params: { ca_path: certs.ca_path })
      child = start_fixture("responder.rb", stream_name, "child", env: { "REDIS_URL" => tls_url, "SSL_CERT_FILE" => certs.ca_file })
      sender = echo_stream("sender", url: tls_url, **trusting)
      expect(sender.send_to_group(content: "hi", to: "echo").content).to eq("hi")
      expect(sender.send_to_group(content: "hi", to: "child").content).to include(echo: "hi")
      finish_processes
      expect(child).to be_closed
    end

    it "checks the server's name: localhost and 127.0.0.1 are in its certificate, another sni is refused" do
      expect(echo_stream("by_name", url: tls_url.sub("127.0.0.1", "localhost"), **trusting)).to be_connected
      error, = connect_error(url: tls_url, ssl_params: { ca_file: certs.ca_file, sni: "redis.example.com" })
      expect(error).to be_a(RedisIPC::ConnectionError)
      expect(error.message).to include("not for redis.example.com")
    end

    it "raises ConnectionError for a server certificate it does not trust, within the connect timeout, without the password" do
      # Without ca_file, OpenSSL's default store, which trusts the suite's CA when the whole suite runs over TLS.
      untrusting = RedisServer.suite_tls? ? [{ ca_file: certs.other_ca_file }] : [{}, { ca_file: certs.other_ca_file }]
      untrusting.each do |params|
        error, elapsed = connect_error(url: "rediss://:#{password}@127.0.0.1:#{tls_server.tls_port}", ssl_params: params)
        expect(error).to be_a(RedisIPC::ConnectionError)
        expect(error.message).to match(/certificate of rediss:\/\/127\.0\.0\.1:\d+\/0 is not trusted/)
        expect(error.message).not_to include(password)
        expect(elapsed).to be < connect_budget(0.5)
      end
    end

    it "connects to an untrusted server with verify_mode VERIFY_NONE (0)" do
      s = echo_stream("unverified", url: tls_url, ssl_params: { ca_file: certs.other_ca_file, verify_mode: 0 })
      expect(s.send_to_group(content: 1, to: "unverified").content).to eq(1)
    end

    it "raises ConnectionError when the server demands a client certificate, and connects with one" do
      url = @client_cert_server.tls_url
      error, elapsed = connect_error(url: url.sub("rediss://", "rediss://:#{password}@"), **trusting)
      expect(error).to be_a(RedisIPC::ConnectionError)
      # The server's alert says so, unless its reset overtook the alert.
      expect(error.message).to match(/certificate required|does it demand a client certificate/)
      expect(error.message).not_to include(password)
      expect(elapsed).to be < connect_budget(0.5)
      s = echo_stream("mtls", url: url, ssl_params: { ca_file: certs.ca_file, cert: certs.client_cert, key: certs.client_key })
      expect(s.send_to_group(content: "m", to: "mtls").content).to eq("m")
    end

    it "says which side is TLS when plain text meets a TLS port or TLS a plain-text one, within the connect timeout" do
      error, elapsed = connect_error(url: "redis://:#{password}@127.0.0.1:#{tls_server.tls_port}")
      expect(error).to be_a(RedisIPC::ConnectionError)
      expect(error.message).to include("is it a TLS port? use rediss:// or ssl: true")
      expect(error.message).not_to include(password)
      expect(elapsed).to be < connect_budget(0.5)

      error, elapsed = connect_error(url: "rediss://:#{password}@127.0.0.1:#{tls_server.port}", **trusting)
      expect(error).to be_a(RedisIPC::ConnectionError)
      expect(error.message).to include("a plain-text port?")
      expect(error.message).not_to include(password)
      expect(elapsed).to be_between(0.45, connect_budget(1.0))
    end

    it "raises ConfigurationError for TLS files that do not load" do
      [[{ ca_file: "/nonexistent/ca.pem" }, "cannot read the CA file /nonexistent/ca.pem"],
       [{ ca_file: certs.server_key }, "could not load the CA certificates"],
       [{ ca_file: certs.ca_file, cert: certs.client_cert, key: certs.server_key }, "could not use the private key"],
       [{ ca_file: certs.ca_file, key: certs.client_key }, "without its certificate"]].each do |params, message|
        error, = connect_error(url: tls_url, ssl_params: params)
        expect(error).to be_a(RedisIPC::ConfigurationError)
        expect(error.message).to include(message)
      end
    end

    it "handshakes again after the server restarts" do
      server = RedisServer.new(tls: certs).start
      begin
        url = server.tls_url
        echo_stream("echo", url: url, **trusting)
        sender = echo_stream("sender", url: url, **trusting)
        expect(sender.send_to_group(content: 1, to: "echo").content).to eq(1)
        server.stop(cleanup: false)
        server.start
        started = monotonic
        begin
          reply = sender.send_to_group(content: 2, to: "echo", timeout: 0.5).content
        rescue RedisIPC::TimeoutError, RedisIPC::ConnectionError
          raise "not serving 10 s after the restart" if monotonic - started > 10

          retry
        end
        expect(reply).to eq(2)
        expect(client_ports(server)).to all(satisfy { |port| port != server.port })
      ensure
        (@streams || []).each(&:disconnect)
        server.stop
      end
    end

    # OpenSSL's handshakes take process-wide locks (its random generator's,
    # among others): a fork while an engine thread held one left the child's
    # copy locked, and the child hung at its first TLS context. Forking right
    # after a connect, while the new stream's threads handshake, hung about
    # 7 children in 100 before forks waited for handshakes.
    it "gives a child forked while the engine's threads handshake a TLS that works", valgrind: false do
      # 100 forks of a process whose threads allocate: GCC 12's ASan
      # allocator takes no locks around fork (faults_spec.rb); the TLS pass
      # of bin/test runs this example.
      skip "forks of a threaded process under ASan" if ENV["REDIS_IPC_SPEC_LIB"]
      hung = 0
      100.times do |i|
        parent = echo_stream("parent", url: tls_url, **trusting)
        begin
          Timeout.timeout(10) do
            in_fork do
              child = RedisIPC::Stream.new(stream_name, "child").on_request { nil }
              child.connect(redis_options: { url: tls_url, **trusting })
              child.disconnect
              { "forked" => i }
            end
          end
        rescue Timeout::Error
          hung += 1
        end
        parent.disconnect
      end
      expect(hung).to eq(0)
    end
  end

  describe "from the redis-ipc tool" do
    let(:cli) { File.join(SpecHelpers.make_c_programs, "redis-ipc") }

    def run_cli(*args)
      Open3.capture3({ "REDIS_URL" => nil, "LD_PRELOAD" => nil, "SSL_CERT_FILE" => nil }, cli, *args)
    end

    it "sends over rediss:// with --cacert, over --tls with --cacertdir, and shows stats" do
      echo_stream("ruby", url: tls_url, **trusting)
      out, err, status = run_cli("send", "--url", tls_url, "--cacert", certs.ca_file, "--stream", stream_name, "--group", "c", "--to", "ruby", "41")
      expect([out, err, status.exitstatus]).to eq(["41\n", "", 0])
      out, err, status = run_cli("send", "--tls", "-h", "localhost", "-p", tls_server.tls_port.to_s, "--cacertdir", certs.ca_path,
                                 "--stream", stream_name, "--group", "c", "--to", "ruby", "42")
      expect([out, err, status.exitstatus]).to eq(["42\n", "", 0])
      out, _, status = run_cli("stats", "--url", tls_url, "--cacert", certs.ca_file, "--stream", stream_name)
      expect(status.exitstatus).to eq(0)
      expect(out).to include("group ruby")
    end

    it "uses --cert and --key for a server that demands them, and fails clearly without" do
      echo_stream("ruby", url: @client_cert_server.tls_url, ssl_params: { ca_file: certs.ca_file, cert: certs.client_cert, key: certs.client_key })
      base = ["send", "--url", @client_cert_server.tls_url, "--cacert", certs.ca_file, "--stream", stream_name, "--group", "c", "--to", "ruby"]
      out, err, status = run_cli(*base, "--cert", certs.client_cert, "--key", certs.client_key, "7")
      expect([out, err, status.exitstatus]).to eq(["7\n", "", 0])
      _, err, status = run_cli(*base, "7")
      expect(status.exitstatus).to eq(3)
      expect(err).to match(/certificate required|does it demand a client certificate/)
    end

    it "exits 3 for an untrusted certificate, a wrong --sni, or TLS against a plain-text port" do
      base = ["send", "--stream", stream_name, "--group", "c", "--to", "nobody"]
      _, err, status = run_cli(*base, "--url", "rediss://:#{password}@127.0.0.1:#{tls_server.tls_port}", "--cacert", certs.other_ca_file, "1")
      expect([status.exitstatus, err]).to match([3, /is not trusted/])
      expect(err).not_to include(password)
      _, err, status = run_cli(*base, "--url", tls_url, "--cacert", certs.ca_file, "--sni", "redis.example.com", "1")
      expect([status.exitstatus, err]).to match([3, /not for redis\.example\.com/])
      _, err, status = run_cli(*base, "--url", "rediss://127.0.0.1:#{tls_server.port}", "--cacert", certs.ca_file, "1")
      expect([status.exitstatus, err]).to match([3, /plain-text port/])
    end
  end
end
