# frozen_string_literal: true

require "spec_helper"

RSpec.describe RedisIPC::RedisOptions do
  around do |example|
    saved = ENV.delete("REDIS_URL")
    example.run
  ensure
    ENV["REDIS_URL"] = saved if saved
  end

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
    expect { described_class.normalize(url: "rediss://x") }.to raise_error(ArgumentError, /TLS/)
    expect { described_class.normalize(url: "unix://") }.to raise_error(ArgumentError)
    expect { described_class.normalize("redis://x") }.to raise_error(ArgumentError, /Hash/)
    expect { described_class.normalize(host: "a\0b") }.to raise_error(ArgumentError, /NUL/)
  end
end
