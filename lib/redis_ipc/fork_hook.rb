# frozen_string_literal: true

module RedisIPC
  # Ruby's fork hook (Process._fork, Ruby 3.1+), which every Ruby-level fork
  # goes through: Kernel#fork, Process.fork, IO.popen("-"), and so the
  # forks of Puma, Unicorn, Sidekiq swarm or Resque. In the child, each
  # stream connected in the parent becomes simply not connected: its
  # engine's inherited sockets are closed without a command on them (the
  # parent's consumers, heartbeats and instance keys in Redis stay as they
  # are, and the parent keeps serving), the parent's watcher is dropped,
  # and `connect` makes the child an instance of its own. The engine's
  # service thread needs nothing here: the C side resets it in its own
  # pthread_atfork handler (ipc_service.c).
  # @api private
  module ForkHook
    # Process._fork, which every fork goes through: the child forgets the parent's streams.
    def _fork
      pid = super
      Watcher.after_fork if pid.zero?
      pid
    end
  end

  Process.singleton_class.prepend(ForkHook)
end
