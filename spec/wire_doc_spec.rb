# frozen_string_literal: true

require "openssl"

# docs/wire.md, the project's own wire document, says what the engine
# writes. Each name the engine builds is declared in ipc_keys.h after a
# comment that opens with its pattern ("<stream>:<group>:instances: ..."):
# every such pattern must be in the document, so a key, channel or consumer
# name added later without documentation fails here. So must the entry
# fields the engine writes, the ids' lengths, the signature's domain
# string, the metrics line's version, and the worked signature example must
# compute. Only files are read: no Redis, no compiled extension (so this
# file does not load spec_helper, which starts a redis-server).
RSpec.describe "the wire document (docs/wire.md)" do
  root = File.expand_path("..", __dir__)
  engine = File.join(root, "ext/redis_ipc/engine")
  read = ->(path) { File.read(File.join(engine, path)) }

  let(:doc) { File.read(File.join(root, "docs/wire.md")) }

  # A name pattern: literal characters of keys and names around at least
  # one <placeholder> ("<request id>" may hold a space).
  pattern = /(?:<[^<>\n]+>|[A-Za-z0-9_.:{}-])*<[^<>\n]+>(?:<[^<>\n]+>|[A-Za-z0-9_.:{}-])*/

  # { function => the comment right before its declaration, or nil } for
  # every function of ipc_keys.h that returns a built string (char *).
  def builders(header)
    header.scan(/^[ \t]*char[ \t]*\*[ \t]*(ripc_\w+)[ \t]*\(/).flatten.to_h do |name|
      comment = header[%r{/\*((?:(?!\*/).)*)\*/[ \t]*\n[ \t]*char[ \t]*\*[ \t]*#{name}[ \t]*\(}m, 1]
      [name, comment]
    end
  end

  # The C string literal defined by `definition` in source (a #define or an initializer).
  def c_string(source, definition)
    source[/#{definition}\s*=?\s*"([^"]*)"/, 1] or raise "#{definition} not found"
  end

  it "documents every key, channel and consumer name that ipc_keys.h declares, by the pattern its comment gives" do
    found = builders(read.call("ipc_keys.h"))
    expect(found.keys).to include("ripc_key_consumers", "ripc_key_instances", "ripc_key_wake", "ripc_key_seen",
                                  "ripc_key_metrics", "ripc_name_inbox", "ripc_name_dispatcher")
    problems = found.filter_map do |name, comment|
      next "#{name} has no comment right before its declaration in ipc_keys.h" unless comment

      shape = comment[pattern]&.sub(/[:.,;]+\z/, "")
      next "the comment of #{name} in ipc_keys.h gives no pattern (such as <stream>:<group>:...)" unless shape
      next "docs/wire.md does not mention #{shape} (built by #{name})" unless doc.include?(shape)
    end
    expect(problems).to be_empty, problems.join("\n")
  end

  it "lists the six entry fields in the order the engine writes them, and the fields it adds" do
    six = read.call("ipc_entry.c")[/ripc_field_names\[RIPC_FIELD_COUNT\]\s*=\s*\{([^}]*)\}/m, 1].scan(/"([^"]+)"/).flatten
    expect(six).to eq(%w[id instance_id status content source_group destination_group])
    rows = six.map { |field| doc.index("| `#{field}` |") }
    expect(rows).to all(be_an(Integer)), "docs/wire.md has no table row for each of #{six.join(", ")}"
    expect(rows).to eq(rows.sort)

    signing = read.call("ipc_signing.h")
    added = [c_string(signing, "#define RIPC_SIGNED_AT_FIELD"), c_string(signing, "#define RIPC_SIGNATURE_FIELD")]
    added << c_string(read.call("ipc_outbox.c"), "MARKER_FIELD\\[\\]")
    added.each { |field| expect(doc).to include("`#{field}`") }
  end

  it "gives the lengths of instance ids and request ids the engine draws" do
    instance = read.call("ipc_stream.h")[/RIPC_INSTANCE_ID_LEN\s*=\s*(\d+)/, 1]
    request = read.call("ipc_ledger.h")[/RIPC_REQUEST_ID_LEN\s*=\s*(\d+)/, 1]
    expect(doc).to include("`[0-9a-f]{#{instance}}`", "`[0-9a-f]{#{request}}`")
  end

  it "names the signature's domain string and the metrics line's version as the engine writes them" do
    expect(doc).to include("`#{c_string(read.call("ipc_signing.c"), "DOMAIN\\[\\]")}`")
    expect(doc).to include(c_string(read.call("ipc_metrics.c"), "LINE_VERSION"))
  end

  it "has a worked signature example that computes: HMAC-SHA256 over length-prefixed pieces" do
    block = doc[/^#### Worked example\n.*?^```text\n(.*?)^```/m, 1]
    expect(block).not_to be_nil, "docs/wire.md has no ```text block under #### Worked example"
    values = block.lines.to_h { |line| line.chomp.split(/\s+/, 2) }
    domain = c_string(read.call("ipc_signing.c"), "DOMAIN\\[\\]")
    pieces = [domain, values.fetch("stream"),
              *%w[id instance_id status content source_group destination_group].map { |f| values.fetch(f) },
              values.fetch("signed_at")]
    input = pieces.map { |v| [v.bytesize].pack("Q>") + v.b }.join
    expect(OpenSSL::HMAC.hexdigest("SHA256", values.fetch("key"), input)).to eq(values.fetch("signature"))
  end

  it "describes both ways of routing: the direct lanes with their keys and commands" do
    expect(doc).to match(/^## 7\. Routing between instances of this gem$/)
    section = doc[/^## 7\..*?(?=^## 8\.)/m]
    expect(section).to include("<stream>:<group>:requests", "<stream>:<group>:<instance_id>:replies", "NOMKSTREAM",
                               "XINFO CONSUMERS <stream>:<to>:requests <to>", "> > >")
  end
end
