# frozen_string_literal: true

require_relative "lib/redis_ipc/version"

Gem::Specification.new do |spec|
  spec.name = "redis_ipc"
  spec.version = RedisIPC::VERSION
  spec.summary = "Request/reply between Ruby (and C) processes over Redis Streams, with a C engine"
  spec.description = "RedisIPC::Stream lets processes answer requests addressed to their group and send " \
                     "requests to other groups over one Redis stream. The engine is written in C on hiredis: " \
                     "native threads block on the stream with the GVL released. Wire-compatible with redis_ipc 1.x."
  spec.authors = ["redis_ipc developers"]
  spec.license = "MIT"
  spec.homepage = "https://github.com/itsthedevman/redis_ipc"
  # Process._fork, the fork hook that fork safety rests on, came with 3.1.
  spec.required_ruby_version = ">= 3.1"

  # Everything the extension's build reads: its sources, extconf.rb and the
  # header dependencies (depend), which mkmf puts into the Makefile; and the
  # redis-ipc tool's sources, which extconf.rb builds with it.
  spec.files = Dir["lib/**/*.rb", "ext/redis_ipc/**/*.{c,h,rb}", "ext/redis_ipc/depend", "cli/*.{c,h}",
                   "exe/redis-ipc", "README.md", "CHANGELOG.md", "LICENSE", "docs/*.md"]
  spec.require_paths = ["lib"]
  # A stub that runs the C tool installed beside the extension.
  spec.bindir = "exe"
  spec.executables = ["redis-ipc"]
  spec.extensions = ["ext/redis_ipc/extconf.rb"]
  spec.add_dependency "json", ">= 2.6", "< 4"
  # Not loaded at run time: the gem ships hiredis 1.0.2's source with its SSL
  # module, which extconf.rb builds into this extension when the system has
  # no hiredis >= 1.0 with hiredis_ssl (ext/redis_ipc/hiredis_build.rb).
  spec.add_dependency "hiredis-client", ">= 0.22", "< 1"
  spec.metadata["rubygems_mfa_required"] = "true"
  spec.metadata["homepage_uri"] = spec.homepage
  spec.metadata["source_code_uri"] = "https://github.com/itsthedevman/redis_ipc"
  spec.metadata["changelog_uri"] = "https://github.com/itsthedevman/redis_ipc/blob/main/CHANGELOG.md"
  spec.metadata["bug_tracker_uri"] = "https://github.com/itsthedevman/redis_ipc/issues"
  spec.metadata["documentation_uri"] = "https://rubydoc.info/gems/redis_ipc"
end
