# frozen_string_literal: true

module RedisIPC
  class Stream
    # One message on the stream: a request handed to on_request, or the reply
    # that send_to_group returns.
    class Entry
      # The values of the status field (WIRE.md).
      STATUSES = [
        STATUS_PENDING = "pending",
        STATUS_FULFILLED = "fulfilled",
        STATUS_REJECTED = "rejected"
      ].freeze

      # @return [String] the request id (a reply carries its request's)
      attr_reader :id
      # @return [String] the stream entry's id, e.g. "1700000000000-0"
      attr_reader :redis_id
      # @return [String] the instance that sent the original request
      attr_reader :instance_id
      # @return [String] "pending" for a request, "fulfilled" or "rejected" for a reply
      attr_reader :status
      # @return [Object] the content, decoded from JSON (Hashes with Symbol keys) or the String as written
      attr_reader :content
      # @return [String] the group that wrote this entry
      attr_reader :source_group
      # @return [String] the group it is meant for
      attr_reader :destination_group

      # Built from the engine's [redis_id, id, instance_id, status, content,
      # source_group, destination_group, redelivered, lane]. Every request
      # and reply goes through here: no keyword arguments, no splat (their
      # hashes and arrays were a tenth of a sender's Ruby time).
      # @api private
      def self.from_native(fields)
        allocate.send(:assign, fields[0], fields[1], fields[2], fields[3], fields[4], fields[5], fields[6],
                      fields[7], fields)
      end

      # @api private
      def initialize(redis_id, id, instance_id, status, raw_content, source_group, destination_group,
                     redelivered: false, native: nil)
        assign(redis_id, id, instance_id, status, raw_content, source_group, destination_group, redelivered, native)
      end

      # @return [Boolean] a request, waiting for its answer
      def pending? = status == STATUS_PENDING
      # @return [Boolean] a reply that fulfils its request
      def fulfilled? = status == STATUS_FULFILLED
      # @return [Boolean] a reply that rejects its request
      def rejected? = status == STATUS_REJECTED

      # True for a request that an instance which died had taken before this
      # one got it: its handler may have run there already (at-least-once
      # delivery; see the README). Always false for a reply.
      # @return [Boolean]
      def redelivered? = @redelivered

      # As 1.x's response: the content of a fulfilled reply.
      # @return [Object, nil]
      def value = fulfilled? ? content : nil
      # As 1.x's response: the content of a rejected reply.
      # @return [Object, nil]
      def reason = rejected? ? content : nil

      # @return [Hash{Symbol => Object}] the fields, content decoded
      def to_h
        { id: id, redis_id: redis_id, instance_id: instance_id, status: status, content: content,
          source_group: source_group, destination_group: destination_group }
      end

      # @return [String]
      def inspect
        "#<#{self.class.name} id=#{id} status=#{status} #{source_group}->#{destination_group} content=#{content.inspect}>"
      end

      # The fields as the engine read them, used to answer the request.
      # @api private
      def native_fields = @native

      private

      def assign(redis_id, id, instance_id, status, raw_content, source_group, destination_group, redelivered, native)
        @redis_id = redis_id
        @id = id
        @instance_id = instance_id
        @status = status
        @raw_content = raw_content
        @content = Content.decode(raw_content)
        @source_group = source_group
        @destination_group = destination_group
        @redelivered = redelivered ? true : false
        @native = native
        freeze
      end
    end
  end
end
