# frozen_string_literal: true

module RedisIPC
  class Stream
    # What send_to_groups_async returns: one request per group, in flight
    # together. #value gives { group => Entry or the error its request ended
    # with } once every reply is in or timed out.
    class PendingReplies
      # replies: group => PendingReply, or the error that kept it from being sent.
      # @api private
      def initialize(replies)
        @replies = replies.freeze
      end

      # @return [Array<String>] the destination groups, in the order they were given
      def groups = @replies.keys

      # The PendingReply of one group (or the error that kept it from being sent).
      # @param group [String]
      # @return [PendingReply, Error, nil]
      def [](group) = @replies[group]

      # Blocks until every request is settled; each has the timeout it was
      # sent with, so this returns within about that timeout. Repeatable.
      # @return [Hash{String => Entry, Error}]
      def value
        @replies.transform_values { |reply| outcome(reply) }
      end

      # Like #value, but gives up after `seconds` and returns nil while some
      # reply has not come yet (the requests stay in flight).
      # @param seconds [Numeric, nil] nil waits as long as #value
      # @return [Hash{String => Entry, Error}, nil]
      def wait(seconds = nil)
        raise ArgumentError, "wait takes a non-negative number of seconds" unless seconds.nil? || (seconds.is_a?(Numeric) && seconds >= 0)

        deadline = seconds && (RedisIPC.monotonic + seconds)
        @replies.each_value do |reply|
          next if reply.is_a?(Exception)
          return nil unless settled?(reply, deadline && [deadline - RedisIPC.monotonic, 0].max)
        end
        value
      end

      # @return [Boolean] true once #value would not block
      def ready?
        @replies.each_value.all? { |reply| reply.is_a?(Exception) || reply.ready? }
      end

      # @return [String]
      def inspect
        "#<#{self.class.name} #{@replies.keys.join(", ")} #{ready? ? "settled" : "pending"}>"
      end

      private

      def outcome(reply)
        return reply if reply.is_a?(Exception)

        reply.value
      rescue Error => e
        e
      end

      def settled?(reply, seconds)
        !reply.wait(seconds).nil?
      rescue Error
        true
      end
    end
  end
end
