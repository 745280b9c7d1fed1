# frozen_string_literal: true

module RedisIPC
  class Stream
    # One message on the stream: a request handed to on_request, or the reply
    # that send_to_group returns.
    class Entry
      STATUSES = [
        STATUS_PENDING = "pending",
        STATUS_FULFILLED = "fulfilled",
        STATUS_REJECTED = "rejected"
      ].freeze

      attr_reader :id, :redis_id, :instance_id, :status, :content, :source_group, :destination_group

      # Built from the engine's [redis_id, id, instance_id, status, content,
      # source_group, destination_group, redelivered].
      def self.from_native(fields)
        new(*fields.first(7), redelivered: fields[7], native: fields)
      end

      def initialize(redis_id, id, instance_id, status, raw_content, source_group, destination_group,
                     redelivered: false, native: nil)
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

      def pending? = status == STATUS_PENDING
      def fulfilled? = status == STATUS_FULFILLED
      def rejected? = status == STATUS_REJECTED

      # True for a request that an instance which died had taken before this
      # one got it: its handler may have run there already (at-least-once
      # delivery; see the README). Always false for a reply.
      def redelivered? = @redelivered

      # As 1.x's response: the content of a fulfilled reply...
      def value = fulfilled? ? content : nil
      # ...and the content of a rejected one.
      def reason = rejected? ? content : nil

      def to_h
        { id: id, redis_id: redis_id, instance_id: instance_id, status: status, content: content,
          source_group: source_group, destination_group: destination_group }
      end

      def inspect
        "#<#{self.class.name} id=#{id} status=#{status} #{source_group}->#{destination_group} content=#{content.inspect}>"
      end

      # The fields as the engine read them, used to answer the request. :nodoc:
      def native_fields = @native
    end
  end
end
