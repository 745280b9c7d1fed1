# frozen_string_literal: true

module RedisIPC
  # A ready middleware that publishes ActiveSupport::Notifications events
  # (when ActiveSupport is loaded; without it, it only yields):
  #
  #   send.redis_ipc    stream, from (the sending group), group (the
  #                     destination), content_bytes, async
  #   handle.redis_ipc  stream, group, entry_id, content_bytes, source_group
  #
  # Names are Strings. An event whose send or handler raised carries
  # :exception and :exception_object, as ActiveSupport does. A send event
  # lasts the round trip; an async one only the posting.
  #
  #   RedisIPC.register(RedisIPC::Notifications)
  #   ActiveSupport::Notifications.subscribe("send.redis_ipc") { |event| ... }
  module Notifications
    # Publishes send.redis_ipc around a send.
    # @param stream [Stream]
    # @param group [String] the destination
    # @param content_bytes [Integer]
    # @param async [Boolean]
    def send_request(stream:, group:, content_bytes:, async:, **, &block)
      payload = { stream: stream.stream_name, from: stream.group_name, group: group, content_bytes: content_bytes, async: async }
      Notifications.instrument("send.redis_ipc", payload, &block)
    end

    # Publishes handle.redis_ipc around a handled request.
    # @param stream [Stream]
    # @param group [String] the handling group
    # @param entry_id [String]
    # @param content_bytes [Integer]
    # @param source_group [String]
    def handle_request(stream:, group:, entry_id:, content_bytes:, source_group:, **, &block)
      payload = { stream: stream.stream_name, group: group, entry_id: entry_id, content_bytes: content_bytes,
                  source_group: source_group }
      Notifications.instrument("handle.redis_ipc", payload, &block)
    end

    # ActiveSupport::Notifications.instrument when ActiveSupport is loaded, else the block alone.
    # @api private
    def self.instrument(name, payload, &block)
      return yield unless defined?(::ActiveSupport::Notifications)

      ::ActiveSupport::Notifications.instrument(name, payload, &block)
    end
  end
end
