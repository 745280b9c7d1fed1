# frozen_string_literal: true

require "json"

require_relative "redis_ipc/version"
require_relative "redis_ipc/errors"
# The extension looks up the error classes above when it loads.
require "redis_ipc/redis_ipc"
require_relative "redis_ipc/content"
require_relative "redis_ipc/redis_options"
require_relative "redis_ipc/connect_options"
require_relative "redis_ipc/stream/entry"
require_relative "redis_ipc/stream/pending_reply"
require_relative "redis_ipc/stream/pending_replies"
require_relative "redis_ipc/middlewares"
require_relative "redis_ipc/notifications"
require_relative "redis_ipc/stream/consumer_pool"
require_relative "redis_ipc/watcher"
require_relative "redis_ipc/stream"
require_relative "redis_ipc/fork_hook"

# Request/reply between processes over a Redis stream. See RedisIPC::Stream.
module RedisIPC
  # Seconds on the monotonic clock, for deadlines. :nodoc:
  def self.monotonic
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end
end
