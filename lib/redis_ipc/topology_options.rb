# frozen_string_literal: true

require "uri"

module RedisIPC
  module RedisOptions
    # The Sentinel and Cluster keys of `redis_options:`, named as
    # redis-client names them:
    #   sentinels: [{ host:, port: }, ...], name: "mymaster", role: :master,
    #   sentinel_username:, sentinel_password:
    #   nodes: ["redis://host:port", ...] (a Redis Cluster's seed nodes)
    # Every other key (password, TLS, timeouts) applies to every server.
    module Topology
      # The keys of redis_options: that name sentinels or cluster nodes.
      KEYS = %i[sentinels name role sentinel_username sentinel_password nodes].freeze
      MAX_ADDRESSES = 32 # the engine's bound

      module_function

      # Moves the topology keys of options (symbol keys) into config as the
      # engine's sentinels, master_name, sentinel_username,
      # sentinel_password and cluster_nodes.
      def apply(options, config)
        sentinels = options[:sentinels]
        nodes = options[:nodes]
        if sentinels.nil?
          %i[name role sentinel_username sentinel_password].each do |key|
            raise ArgumentError, "redis_options #{key} goes with sentinels:" unless options[key].nil?
          end
        end
        raise ArgumentError, "redis_options sentinels and nodes exclude each other (Sentinel or Cluster)" if sentinels && nodes

        if sentinels
          name = options[:name]
          unless name.is_a?(String) && !name.empty? && !name.include?("\0")
            raise ArgumentError, "redis_options sentinels needs name: (the name the sentinels know the primary by)"
          end

          role = options.fetch(:role, :master)
          unless [:master, "master"].include?(role)
            raise ArgumentError, "redis_options role must be :master, got #{role.inspect}: a stream writes, so it needs the primary"
          end

          config[:sentinels] = addresses(sentinels, :sentinels)
          config[:master_name] = name
          %i[sentinel_username sentinel_password].each do |key|
            value = options[key]
            raise ArgumentError, "redis_options #{key} must be a String without NUL bytes" unless value.nil? || (value.is_a?(String) && !value.include?("\0"))

            config[key] = value
          end
        end
        config[:cluster_nodes] = addresses(nodes, :nodes, config) if nodes
        config
      end

      # "host:port,host:port" from a list of {host:, port:} hashes, URLs or
      # "host:port" strings. A node URL's password, username and scheme
      # (rediss) apply when the options do not set them.
      def addresses(list, key, config = nil)
        unless list.is_a?(Array) && !list.empty? && list.size <= MAX_ADDRESSES
          raise ArgumentError, "redis_options #{key} must be an Array of 1 to #{MAX_ADDRESSES} addresses"
        end

        list.map { |item| address(item, key, config) }.join(",")
      end

      def address(item, key, config)
        host, port =
          case item
          when Hash
            item = item.transform_keys(&:to_sym)
            [item[:host], item.fetch(:port, key == :sentinels ? 26_379 : 6379)]
          when %r{\A(redis|rediss)://}
            from_url(item, key, config)
          when String
            item.match(/\A\[?([^\[\]]+?)\]?:(\d+)\z/)&.captures || raise(ArgumentError, "redis_options #{key}: #{item.inspect} is not host:port")
          else
            raise ArgumentError, "redis_options #{key} items must be {host:, port:} Hashes, URLs or \"host:port\", got #{item.class}"
          end
        port = Integer(port, exception: false) if port.is_a?(String)
        raise ArgumentError, "redis_options #{key}: host must be a non-empty String" unless host.is_a?(String) && !host.empty? && !host.match?(/[\s,\0]/)
        raise ArgumentError, "redis_options #{key}: port must be from 1 to 65535" unless port.is_a?(Integer) && port.between?(1, 65_535)

        host.include?(":") ? "[#{host}]:#{port}" : "#{host}:#{port}"
      end

      # [host, port] of a sentinel or node given as a URL; its TLS scheme and credentials go into config.
      def from_url(url, key, config)
        uri = URI.parse(url)
        if config
          config[:ssl] = true if uri.scheme == "rediss"
          config[:password] ||= URI.decode_www_form_component(uri.password) if uri.password
          config[:username] ||= URI.decode_www_form_component(uri.user) if uri.password && uri.user && !uri.user.empty?
        end
        [uri.host.to_s.delete_prefix("[").delete_suffix("]"), uri.port || 6379]
      rescue URI::InvalidURIError
        raise ArgumentError, "redis_options #{key}: an item is not a valid redis:// URL", cause: nil
      end
    end
  end
end
