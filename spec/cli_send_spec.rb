# frozen_string_literal: true

require "spec_helper"
require_relative "support/cli_tool"

# redis-ipc send: CONTENT from the command line or standard input, checked
# whole (not empty, valid UTF-8, at most max_content_bytes) before anything
# reaches Redis.
RSpec.describe "redis-ipc send", timeout: 60 do
  include CLITool

  let(:stream_name) { unique("cli_send") }

  def send_args(to = "ruby") = ["send", "--stream", stream_name, "--group", "shell", "--to", to]

  # Keys of this stream in Redis: the stream itself, groups' instances and consumers.
  def stream_keys = raw_redis.keys("#{stream_name}*")

  it "reads CONTENT from standard input when it is - or missing, up to max_content_bytes" do
    connected_stream(stream_name, "ruby", max_content_bytes: 8 * 1024 * 1024) do |e|
      fulfill_request(e, content: e.content.is_a?(String) && e.content.size > 100 ? { "bytes" => e.content.bytesize } : e.content)
    end
    big = "é" * 2_000_000 # 4 MB of UTF-8, more than any argument may hold
    out, err, status = run_cli(*send_args, "--max-content-bytes", (8 * 1024 * 1024).to_s, stdin: "\"#{big}\"\n")
    expect([out, err, status.exitstatus]).to eq(["{\"bytes\":#{big.bytesize}}\n", "", 0])
    out, _, status = run_cli(*send_args, "-", stdin: '{"a":[1,2]}')
    expect([out, status.exitstatus]).to eq(["{\"a\":[1,2]}\n", 0])
    out, _, status = run_cli(*send_args, '"as an argument"')
    expect([out, status.exitstatus]).to eq(["\"as an argument\"\n", 0])
  end

  it "exits 64 for empty, invalid UTF-8 or oversized content before writing anything to Redis" do
    cases = {
      ["-"] => ["", "\n\r\n"],
      [] => ["", "\xff\xfe", "caf\xc3", "\xed\xa0\x80"], # a lone surrogate is no UTF-8 either
      ["--max-content-bytes", "10"] => ["12345678901", "#{"x" * 11}\n"]
    }
    cases.each do |extra, inputs|
      inputs.each do |input|
        out, err, status = run_cli(*send_args("nobody"), *extra, stdin: input.b)
        expect([out, status.exitstatus]).to eq(["", 64]), "#{extra.inspect} #{input.inspect}: #{err}"
        expect(err).to match(/standard input is (empty|not valid UTF-8|over max_content_bytes \(10;)/)
      end
    end
    _, err, status = run_cli(*send_args("nobody"), "\xff".b)
    expect([err, status.exitstatus]).to eq(["redis-ipc: CONTENT is not valid UTF-8\n", 64])
    _, err, status = run_cli(*send_args("nobody"), "--max-content-bytes", "3", "1234")
    expect([err, status.exitstatus]).to eq(["redis-ipc: CONTENT is over max_content_bytes (3; --max-content-bytes sets it)\n", 64])
    _, _, status = run_cli(*send_args("nobody"), "one", "two")
    expect(status.exitstatus).to eq(64)
    expect(stream_keys).to be_empty
  end

  it "takes exactly max_content_bytes from standard input, trailing newlines dropped" do
    connected_stream(stream_name, "ruby") { |e| fulfill_request(e, content: e.content.bytesize) }
    out, err, status = run_cli(*send_args, "--max-content-bytes", "10", stdin: "\"12345678\"\r\n")
    expect([out, err, status.exitstatus]).to eq(["8\n", "", 0])
  end
end
