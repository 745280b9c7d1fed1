# frozen_string_literal: true

require "spec_helper"
require_relative "support/cli_tool"

# Numbers on redis-ipc's command line and in its URLs parse strictly and
# within bounds: anything else exits 64 with a message naming the option.
RSpec.describe "redis-ipc numbers", timeout: 60 do
  include CLITool

  let(:stream_name) { unique("cli_numbers") }
  let(:send_args) { ["send", "--stream", stream_name, "--group", "g", "--to", "nobody"] }

  bad = ["6379junk", "0x10", " 5", "5 ", "+5", "-1", "inf", "nan", "1e3", "", "99999999999999999999999"].freeze

  {
    "--port" => [1, 65_535],
    "--db" => [0, 65_535],
    "--threads" => [1, 256],
    "--max-content-bytes" => [1, 512 * 1024 * 1024]
  }.each do |option, (min, max)|
    it "refuses #{option} with junk, signs, infinities, NaN and values out of #{min}..#{max}" do
      [*bad, (min - 1).to_s, (max + 1).to_s, "1.5"].each do |value|
        sub = option == "--threads" ? ["serve", "--stream", stream_name, "--group", "g", "--echo"] : send_args
        _, err, status = run_cli(*sub, option, value, "1")
        expect([status.exitstatus, err]).to match([64, /#{option} must be a whole number from #{min} to #{max}, got "#{Regexp.escape(value)}"/]),
                                            "#{option} #{value.inspect}: #{err}"
      end
    end
  end

  it "refuses --timeout with junk, infinities, NaN, exponents, zero, negatives and more than a day" do
    [*bad, "0.2abc", "0", "0.0", ".", "1.2.3", "86400.5", "1e-3", "Infinity"].each do |value|
      _, err, status = run_cli(*send_args, "--timeout", value, "1")
      expect([status.exitstatus, err]).to match([64, /--timeout must be a number of seconds above 0 and up to 86400, got/]),
                                          "--timeout #{value.inspect}: #{err}"
    end
  end

  it "takes the short forms -p and -n, and values at the bounds" do
    %w[-p 0 -n 70000].each_slice(2) do |flag, value|
      expect(run_cli(*send_args, flag, value, "1")[2].exitstatus).to eq(64)
    end
    # In bounds, so it gets as far as Redis: a port where no server listens.
    _, err, status = run_cli(*send_args, "-h", "127.0.0.1", "-p", "1", "-n", "65535", "--timeout", "86400", "1", env: { "REDIS_URL" => nil })
    expect([status.exitstatus, err]).to match([3, /could not connect to redis:\/\/127\.0\.0\.1:1\/65535/])
  end

  it "refuses ports and dbs with junk in a URL, from --url or REDIS_URL" do
    ["redis://127.0.0.1:6379junk", "redis://127.0.0.1:0", "redis://127.0.0.1:70000", "redis://127.0.0.1:-1",
     "redis://127.0.0.1:/0", "redis://127.0.0.1:6379/1x", "redis://127.0.0.1:6379/70000", "unix:///tmp/x.sock?db=-1",
     "unix:///tmp/x.sock?db=1x", "unix:///tmp/x.sock?timeout=1"].each do |url|
      _, err, status = run_cli(*send_args, "--url", url, "1")
      expect([status.exitstatus, err]).to match([64, /invalid Redis url/]), "--url #{url}: #{err}"
      _, err, status = run_cli(*send_args, "1", env: { "REDIS_URL" => url })
      expect([status.exitstatus, err]).to match([64, /REDIS_URL: invalid Redis url/]), "REDIS_URL=#{url}: #{err}"
    end
  end

  it "refuses a value too long for its buffer instead of cutting it short" do
    _, err, status = run_cli(*send_args, "--password", "x" * 300, "1")
    expect([status.exitstatus, err]).to eq([64, "redis-ipc: --password is too long (at most 255 bytes)\n"])
    _, err, status = run_cli(*send_args, "-h", "h" * 300, "1")
    expect([status.exitstatus, err]).to match([64, /--host is too long/])
  end
end
