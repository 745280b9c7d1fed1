# frozen_string_literal: true

require "spec_helper"

RSpec.describe RedisIPC::RedisOptions do
  around { |example| without_redis_url { example.run } }

  it "defaults to 127.0.0.1:6379, db 0, one-second timeouts" do
    expect(described_class.normalize({})).to include(host: "127.0.0.1", port: 6379, db: 0, timeout: 1.0, connect_timeout: 1.0, path: nil)
  end

  it "parses redis:// urls with credentials and db" do
    c = described_class.normalize(url: "redis://user:p%40ss@example.com:6380/3")
    expect(c).to include(host: "example.com", port: 6380, db: 3, username: "user", password: "p@ss")
    expect(described_class.normalize(url: "redis://:secret@h")).to include(host: "h", password: "secret", username: nil)
  end

  it "parses unix:// urls" do
    expect(described_class.normalize(url: "unix:///tmp/r.sock?db=2")).to include(path: "/tmp/r.sock", db: 2)
  end

  it "turns rediss:// urls, ssl and ssl_params into the engine's TLS settings" do
    expect(described_class.normalize({})).to include(tls: false, tls_skip_verify: false, tls_ca_file: nil)
    expect(described_class.normalize(url: "rediss://:pw@cache.example.com:6380/2"))
      .to include(tls: true, host: "cache.example.com", port: 6380, db: 2, password: "pw", tls_skip_verify: false)
    c = described_class.normalize(host: "h", ssl: true, ssl_params: { ca_file: "/ca.pem", ca_path: "/cas", cert: "/c.pem",
                                                                      key: "/k.pem", sni: "name", verify_mode: 0 })
    expect(c).to include(tls: true, tls_ca_file: "/ca.pem", tls_ca_path: "/cas", tls_cert: "/c.pem", tls_key: "/k.pem",
                         tls_sni: "name", tls_skip_verify: true)
    expect(described_class.normalize(url: "rediss://h", ssl: false)).to include(tls: false)
    expect(described_class.normalize(ssl: true, ssl_params: { verify_mode: :none })).to include(tls_skip_verify: true)
    ENV["REDIS_URL"] = "rediss://envhost:7000"
    expect(described_class.normalize({})).to include(tls: true, host: "envhost", port: 7000)
  end

  it "lets explicit keys win over the url" do
    expect(described_class.normalize(url: "redis://a:1/1", host: "b", db: 4)).to include(host: "b", port: 1, db: 4)
  end

  it "uses REDIS_URL when neither host, path nor url is given" do
    ENV["REDIS_URL"] = "redis://envhost:7000"
    expect(described_class.normalize({})).to include(host: "envhost", port: 7000)
    expect(described_class.normalize(host: "x")).to include(host: "x", port: 6379)
  end

  it "raises ArgumentError for unknown keys and bad values" do
    expect { described_class.normalize(hots: "x") }.to raise_error(ArgumentError, /unknown redis_options: :hots/)
    expect { described_class.normalize(port: 0) }.to raise_error(ArgumentError, /port/)
    expect { described_class.normalize(port: "abc") }.to raise_error(ArgumentError, /port/)
    expect { described_class.normalize(db: -1) }.to raise_error(ArgumentError, /db/)
    expect { described_class.normalize(timeout: 0) }.to raise_error(ArgumentError, /timeout/)
    expect { described_class.normalize(url: "http://x") }.to raise_error(ArgumentError, /redis:\/\//)
    expect { described_class.normalize(ssl: "yes") }.to raise_error(ArgumentError, /ssl must be true or false/)
    expect { described_class.normalize(ssl: true, ssl_params: { ca: "x" }) }.to raise_error(ArgumentError, /unknown redis_options ssl_params: :ca/)
    expect { described_class.normalize(ssl: true, ssl_params: { verify_mode: 3 }) }.to raise_error(ArgumentError, /verify_mode/)
    expect { described_class.normalize(ssl: true, ssl_params: { cert: 42 }) }.to raise_error(ArgumentError, /cert must be a path/)
    expect { described_class.normalize(ssl: true, path: "/tmp/r.sock") }.to raise_error(ArgumentError, /unix socket/)
    expect { described_class.normalize(url: "unix://") }.to raise_error(ArgumentError)
    expect { described_class.normalize("redis://x") }.to raise_error(ArgumentError, /Hash/)
    expect { described_class.normalize(host: "a\0b") }.to raise_error(ArgumentError, /NUL/)
  end
end
