# frozen_string_literal: true

module RedisIPC
  # The options of Stream#connect: defaults, merging of partial nested
  # hashes, and validation (ArgumentError for unknown keys or bad values).
  # @api private
  class ConnectOptions
    # Every option's default (README, "connect options").
    DEFAULTS = {
      redis_options: {},
      logger: nil,
      pool_size: 10,
      max_pool_size: nil,
      ledger: { entry_timeout: 5, cleanup_interval: 1 },
      consumer: { pool_size: 3, execution_interval: 0.01 },
      dispatcher: { pool_size: 2, execution_interval: 0.01 },
      # Beyond the 1.x options:
      takeover: { heartbeat_interval: 0.6, dead_after: 1.3 },
      max_content_bytes: 4 * 1024 * 1024,
      retention: 600,
      fail_fast: true,
      signing: nil # { keys: [...], max_age: 30 }: see README "Signed streams"
    }.freeze

    # The largest value each option takes (ArgumentError past it). Far above
    # what a deployment needs; they keep a typo from starting thousands of
    # threads or connections, or a timeout from overflowing the engine's
    # clocks. The engine (ripc_stream_new) checks its own copy of them.
    DAY = 86_400
    # The largest value of each bounded option.
    MAXIMA = {
      pool_size: 1024,
      max_pool_size: 1024,
      consumer_pool_size: 256,
      dispatcher_pool_size: 16,
      entry_timeout: DAY,
      cleanup_interval: 3600,
      execution_interval: 60,
      heartbeat_interval: 60,
      dead_after: 3600,
      max_content_bytes: 512 * 1024 * 1024,
      retention: 30 * DAY,
      signing_keys: 8,
      signing_key_bytes: 1024,
      signing_max_age: DAY
    }.freeze
    # The signing: option when not given: no keys (an unsigned stream); a 30 s replay window.
    SIGNING_DEFAULTS = { keys: nil, max_age: 30 }.freeze

    # The options, merged with the defaults and checked.
    attr_reader :redis, :logger, :pool_size, :max_pool_size, :entry_timeout, :cleanup_interval,
                :consumer_pool_size, :dispatcher_pool_size, :consumer_interval, :dispatcher_interval,
                :heartbeat_interval, :dead_after, :max_content_bytes, :retention, :fail_fast,
                :signing_max_age

    def initialize(options)
      unknown = options.keys - DEFAULTS.keys
      raise ArgumentError, "unknown connect options: #{unknown.map(&:inspect).join(", ")}" if unknown.any?

      @redis = RedisOptions.normalize(options.fetch(:redis_options, {}))
      @logger = options[:logger]
      if @logger && !%i[debug info warn error].all? { |m| @logger.respond_to?(m) }
        raise ArgumentError, "logger must respond to debug, info, warn and error"
      end

      @pool_size = positive_integer(options.fetch(:pool_size, DEFAULTS[:pool_size]), "pool_size", MAXIMA[:pool_size])
      @max_pool_size = options[:max_pool_size] && positive_integer(options[:max_pool_size], "max_pool_size", MAXIMA[:max_pool_size])
      ledger = section(options, :ledger)
      @entry_timeout = positive_number(ledger[:entry_timeout], "ledger.entry_timeout", MAXIMA[:entry_timeout])
      @cleanup_interval = positive_number(ledger[:cleanup_interval], "ledger.cleanup_interval", MAXIMA[:cleanup_interval])
      consumer = section(options, :consumer)
      @consumer_pool_size = positive_integer(consumer[:pool_size], "consumer.pool_size", MAXIMA[:consumer_pool_size])
      @consumer_interval = positive_number(consumer[:execution_interval], "consumer.execution_interval", MAXIMA[:execution_interval])
      dispatcher = section(options, :dispatcher)
      @dispatcher_pool_size = positive_integer(dispatcher[:pool_size], "dispatcher.pool_size", MAXIMA[:dispatcher_pool_size])
      @dispatcher_interval = positive_number(dispatcher[:execution_interval], "dispatcher.execution_interval", MAXIMA[:execution_interval])
      takeover = section(options, :takeover)
      @heartbeat_interval = positive_number(takeover[:heartbeat_interval], "takeover.heartbeat_interval", MAXIMA[:heartbeat_interval])
      @dead_after = positive_number(takeover[:dead_after], "takeover.dead_after", MAXIMA[:dead_after])
      if @dead_after <= @heartbeat_interval
        raise ArgumentError, "takeover.dead_after must be longer than takeover.heartbeat_interval"
      end
      @max_content_bytes = positive_integer(options.fetch(:max_content_bytes, DEFAULTS[:max_content_bytes]), "max_content_bytes", MAXIMA[:max_content_bytes])
      retention = options.fetch(:retention, DEFAULTS[:retention])
      @retention = retention ? positive_number(retention, "retention", MAXIMA[:retention]) : 0
      @fail_fast = options.fetch(:fail_fast, DEFAULTS[:fail_fast])
      raise ArgumentError, "fail_fast must be true or false, got #{@fail_fast.inspect}" unless [true, false].include?(@fail_fast)
      signing(options[:signing])
      if @max_pool_size && @max_pool_size <= @dispatcher_pool_size
        raise ArgumentError, "max_pool_size must be greater than dispatcher.pool_size (#{@dispatcher_pool_size}): " \
                             "each dispatcher holds a connection and commands need at least one more"
      end
    end

    # Connections for commands: as 1.x, pool_size plus one per consumer; or
    # what max_pool_size leaves after the dispatchers' own connections.
    def command_pool_size
      @max_pool_size ? @max_pool_size - @dispatcher_pool_size : @pool_size + @consumer_pool_size
    end

    def signed?
      !@signing_keys.nil?
    end

    # The options as RedisIPC::Engine.new takes them.
    def engine_options
      signing = signed? ? { signing_keys: @signing_keys, signing_max_age: @signing_max_age.to_f } : {}
      @redis.merge(signing).merge(
        pool_size: command_pool_size,
        dispatcher_count: @dispatcher_pool_size,
        consumer_count: @consumer_pool_size,
        entry_timeout: @entry_timeout.to_f,
        cleanup_interval: @cleanup_interval.to_f,
        heartbeat_interval: @heartbeat_interval.to_f,
        dead_after: @dead_after.to_f,
        max_content_bytes: @max_content_bytes,
        retention: @retention.to_f
      )
    end

    # Without the password nor the signing keys: Ruby quotes #inspect in some messages
    # (NoMethodError), and people print what they are debugging.
    def inspect
      shown = instance_variables.map do |name|
        value = instance_variable_get(name)
        if name == :@redis
          value = value.to_h { |k, v| [k, v && %i[password sentinel_password].include?(k) ? RedisOptions::REDACTED : v] }
        end
        next "signing_keys=(#{value.size} keys)" if name == :@signing_keys && value

        "#{name.to_s.delete_prefix("@")}=#{value.inspect}"
      end
      "#<#{self.class.name} #{shown.join(" ")}>"
    end

    private

    # signing: { keys: [String, ...], max_age: seconds }; the first key signs,
    # every key verifies. Messages name a key by its position, never its bytes.
    def signing(given)
      return if given.nil?
      raise ArgumentError, "signing must be a Hash with keys: and max_age:, got #{given.class}" unless given.is_a?(Hash)

      unknown = given.keys - SIGNING_DEFAULTS.keys
      raise ArgumentError, "unknown signing options: #{unknown.map(&:inspect).join(", ")}" if unknown.any?

      keys = given[:keys]
      unless keys.is_a?(Array) && keys.size.between?(1, MAXIMA[:signing_keys])
        raise ArgumentError, "signing.keys must be an Array of 1 to #{MAXIMA[:signing_keys]} Strings, got #{keys.class}"
      end

      @signing_keys = keys.each_with_index.map do |key, i|
        unless key.is_a?(String) && key.bytesize.between?(1, MAXIMA[:signing_key_bytes])
          raise ArgumentError, "signing.keys[#{i}] must be a String of 1 to #{MAXIMA[:signing_key_bytes]} bytes " \
                               "(a #{key.class}#{" of #{key.bytesize} bytes" if key.is_a?(String)})"
        end

        key.b.freeze
      end.freeze
      @signing_max_age = positive_number(given.fetch(:max_age, SIGNING_DEFAULTS[:max_age]), "signing.max_age", MAXIMA[:signing_max_age])
    end

    def section(options, key)
      given = options.fetch(key, {})
      raise ArgumentError, "#{key} must be a Hash, got #{given.class}" unless given.is_a?(Hash)

      unknown = given.keys - DEFAULTS[key].keys
      raise ArgumentError, "unknown #{key} options: #{unknown.map(&:inspect).join(", ")}" if unknown.any?

      DEFAULTS[key].merge(given)
    end

    def positive_integer(value, name, max)
      raise ArgumentError, "#{name} must be a positive Integer up to #{max}, got #{value.inspect}" unless value.is_a?(Integer) && value.positive? && value <= max

      value
    end

    # Seconds: any real number (Integer, Float, Rational) above 0 and up to max.
    def positive_number(value, name, max)
      unless value.is_a?(Numeric) && value.real? && value.positive? && value.to_f.finite? && value <= max
        raise ArgumentError, "#{name} must be a positive number of seconds up to #{max}, got #{value.inspect}"
      end

      value
    end
  end
end
