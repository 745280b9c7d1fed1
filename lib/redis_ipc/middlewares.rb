# frozen_string_literal: true

module RedisIPC
  # Hooks around every send and every handled request of the process, the
  # shape of redis-client's middlewares: a module (or any object) with
  #
  #   def send_request(stream:, group:, content_bytes:, async:, **)
  #     yield
  #   end
  #
  #   def handle_request(stream:, group:, entry_id:, content_bytes:, source_group:, **)
  #     yield
  #   end
  #
  # registered with RedisIPC.register. `yield` runs the send (with `async:
  # true`, only posting it: the reply comes later through its PendingReply)
  # or the on_request handler, and raises what they raise; what a hook
  # returns is ignored. A hook that raises, or does not yield, never breaks
  # the request: its exception goes to the stream's on_error, the request
  # runs anyway (once), and its outcome is what the caller gets. (Only
  # StandardError is caught: Interrupt, SystemExit and the like go on.)
  #
  # With nothing registered a send pays for one array check.
  module Middlewares
    HOOKS = %i[send_request handle_request].freeze
    LOCK = Mutex.new
    private_constant :LOCK

    # hook name => the middlewares that define it, in the order they run
    # (the last registered outermost, as redis-client does). Replaced, never
    # changed in place, so that a send reads it without a lock.
    @chains = HOOKS.to_h { |hook| [hook, [].freeze] }.freeze
    @registered = [].freeze

    class << self
      attr_reader :registered

      # The chains a send and a handled request go through (read on every one).
      def send_chain = @chains[:send_request]
      def handle_chain = @chains[:handle_request]

      def register(middleware)
        hooks = HOOKS.select { |hook| implements?(middleware, hook) }
        raise ArgumentError, "#{middleware.inspect} defines none of #{HOOKS.join(", ")}" if hooks.empty?

        LOCK.synchronize do
          raise ArgumentError, "#{middleware.inspect} is already registered" if @registered.include?(middleware)

          update(@registered + [middleware])
        end
        middleware
      end

      def unregister(middleware)
        LOCK.synchronize { update(@registered - [middleware]) }
        middleware
      end

      # Runs `block` (the request) inside every hook of `chain`, reporting
      # what the hooks themselves raise with `report`.
      def run(chain, hook, payload, report, &block)
        call = Call.new(block)
        wrap(chain, chain.size - 1, hook, payload, report, call)
        call.outcome
      end

      private

      def implements?(middleware, hook)
        middleware.is_a?(Module) ? middleware.method_defined?(hook) : middleware.respond_to?(hook)
      end

      # A module's methods are called on an object that extends it.
      def receiver(middleware)
        middleware.is_a?(Module) && !middleware.is_a?(Class) ? Object.new.extend(middleware) : middleware
      end

      def update(registered)
        @registered = registered.freeze
        @chains = HOOKS.to_h do |hook|
          [hook, registered.select { |m| implements?(m, hook) }.map { |m| Hook.new(receiver(m), m) }.freeze]
        end.freeze
      end

      def wrap(chain, index, hook, payload, report, call)
        return call.run if index.negative?

        middleware = chain[index]
        raised = false
        begin
          middleware.receiver.public_send(hook, **payload) { wrap(chain, index - 1, hook, payload, report, call) }
        rescue StandardError => e
          # The request's own outcome passes through hooks untouched.
          raise if call.raised?(e)

          report.call(e)
          raised = true
        end
        return if call.ran?

        report.call(Error.new("middleware #{middleware.source.inspect} did not yield to #{hook}")) unless raised
        wrap(chain, index - 1, hook, payload, report, call)
      end
    end

    Hook = Struct.new(:receiver, :source)
    private_constant :Hook

    # The request inside the hooks: run once, its result or exception kept.
    class Call
      def initialize(block)
        @block = block
        @ran = false
        @error = nil
      end

      def ran? = @ran

      def raised?(exception) = @ran && exception.equal?(@error)

      def run
        return outcome if @ran

        @ran = true
        @result = @block.call
      rescue Exception => e # rubocop:disable Lint/RescueException
        @error = e
        raise
      end

      def outcome
        raise @error if @error

        @result
      end
    end
    private_constant :Call
  end

  # Registers a middleware (see Middlewares) for every stream of the process.
  def self.register(middleware)
    Middlewares.register(middleware)
  end

  # Removes one registered with RedisIPC.register.
  def self.unregister(middleware)
    Middlewares.unregister(middleware)
  end
end
