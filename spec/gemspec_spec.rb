# frozen_string_literal: true

require "spec_helper"

# What the gem carries: every file the extension's build reads, and the
# metadata RubyGems shows.
RSpec.describe "the gemspec" do
  let(:root) { File.expand_path("..", __dir__) }
  let(:spec) { Dir.chdir(root) { Gem::Specification.load("redis_ipc.gemspec") } }

  it "packages every file of ext/redis_ipc (sources, headers, extconf.rb, depend) and the changelog" do
    tracked = Dir.chdir(root) { Dir.glob("ext/redis_ipc/**/*").select { |f| File.file?(f) } }
    expect(tracked).to include("ext/redis_ipc/depend", "ext/redis_ipc/engine/ipc_responders.c")
    expect(spec.files).to include(*tracked)
    expect(spec.files).to include("CHANGELOG.md", "README.md", "LICENSE", "lib/redis_ipc/fork_hook.rb")
  end

  it "packages the redis-ipc tool's sources and installs its stub as an executable" do
    sources = Dir.chdir(root) { Dir.glob("cli/*.{c,h}") }
    expect(sources).to include("cli/redis_ipc_cli.c", "cli/cli_stats.c", "cli/cli_peek.c")
    expect(spec.files).to include(*sources, "exe/redis-ipc")
    expect(spec.executables).to eq(["redis-ipc"])
    expect(spec.bindir).to eq("exe")
  end

  it "points to the source, the changelog, the bug tracker and the documentation" do
    expect(spec.homepage).to start_with("https://github.com/")
    expect(spec.metadata.values_at("source_code_uri", "changelog_uri", "bug_tracker_uri", "documentation_uri"))
      .to all(start_with("https://"))
    expect(spec.metadata["changelog_uri"]).to end_with("CHANGELOG.md")
  end
end
