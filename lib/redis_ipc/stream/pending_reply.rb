# frozen_string_literal: true

module RedisIPC
  class Stream
    # What send_to_group_async returns: the reply of a request in flight.
    # One thread can keep many of them open and collect the replies later.
    class PendingReply
      # @api private
      def initialize(native)
        @native = native
        @id = native.id
        @lock = Mutex.new
        @outcome = nil
      end

      # @return [String] the request id this reply will carry
      attr_reader :id

      # Blocks until the reply arrives and returns it as an Entry; raises
      # TimeoutError (or ConnectionError) as send_to_group does. Repeatable.
      # @return [Entry]
      # @raise [TimeoutError, ConnectionError, CommandError]
      def value
        settle(nil)
        raise @outcome if @outcome.is_a?(Exception)

        @outcome
      end

      # Like #value, but gives up after `seconds` and returns nil while the
      # reply has not come yet (the request stays in flight).
      # @param seconds [Numeric, nil] nil waits as long as #value
      # @return [Entry, nil]
      def wait(seconds = nil)
        raise ArgumentError, "wait takes a non-negative number of seconds" unless seconds.nil? || (seconds.is_a?(Numeric) && seconds >= 0)

        settle(seconds) ? value : nil
      end

      # @return [Boolean] true once #value would not block
      def ready?
        !@outcome.nil? || @native.ready?
      end

      # @return [String]
      def inspect
        "#<#{self.class.name} id=#{id} #{@outcome.nil? ? "pending" : "settled"}>"
      end

      private

      # Returns true once the outcome (an Entry or an exception) is known.
      def settle(seconds)
        @lock.synchronize do
          return true unless @outcome.nil?

          # In a forked child the request is the parent's, and so is its
          # reply: ConnectionError (PendingRequest#wait knows the sender's pid).
          fields = @native.wait(seconds)
          return false if fields.nil?

          @outcome = Entry.from_native(fields)
          true
        rescue Error => e
          @outcome = e
          true
        end
      end
    end
  end
end
