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
    # The methods a middleware may define.
    HOOKS = %i[send_request handle_request].freeze
    LOCK = Mutex.new
    private_constant :LOCK

    # hook name => the middlewares that define it, in the order they run
    # (the last registered outermost, as redis-client does). Replaced, never
    # changed in place, so that a send reads it without a lock.
    @chains = HOOKS.to_h { |hook| [hook, [].freeze] }.freeze
    @registered = [].freeze

    class << self
      # @return [Array<Object>] the middlewares registered, in order
      attr_reader :registered

      # The chain a send goes through (read on every one).
      # @api private
      def send_chain = @chains[:send_request]
      # The chain a handled request goes through.
      # @api private
      def handle_chain = @chains[:handle_request]

      # @param middleware [Module, Object] defines send_request, handle_request or both
      # @return [Object] the middleware
      # @raise [ArgumentError] when it defines neither, or is already registered
      def register(middleware)
        hooks = HOOKS.select { |hook| implements?(middleware, hook) }
        raise ArgumentError, "#{middleware.inspect} defines none of #{HOOKS.join(", ")}" if hooks.empty?

        LOCK.synchronize do
          raise ArgumentError, "#{middleware.inspect} is already registered" if @registered.include?(middleware)

          update(@registered + [middleware])
        end
        middleware
      end

      # @param middleware [Module, Object] one given to #register (anything else is ignored)
      # @return [Object] the middleware
      def unregister(middleware)
        LOCK.synchronize { update(@registered - [middleware]) }
        middleware
      end

      # Runs `block` (the request) inside every hook of `chain`, reporting
      # what the hooks themselves raise with `report`.
      # @api private
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
    # @api private
    class Call
      def initialize(block)
        @block = block
        @ran = false
        @error = nil
      end

      # Whether the request ran.
      def ran? = @ran

      # Whether exception is the request's own.
      def raised?(exception) = @ran && exception.equal?(@error)

      # Runs the request, once.
      def run
        return outcome if @ran

        @ran = true
        @result = @block.call
      rescue Exception => e # rubocop:disable Lint/RescueException
        @error = e
        raise
      end

      # The request's result, or its exception raised again.
      def outcome
        raise @error if @error

        @result
      end
    end
    private_constant :Call
  end

  # Registers a middleware (see Middlewares) for every stream of the process.
  # @param (see Middlewares.register)
  # @return (see Middlewares.register)
  def self.register(middleware)
    Middlewares.register(middleware)
  end

  # Removes one registered with RedisIPC.register.
  # @param (see Middlewares.unregister)
  # @return (see Middlewares.unregister)
  def self.unregister(middleware)
    Middlewares.unregister(middleware)
  end
end
