# frozen_string_literal: true

require "uri"

module RedisIPC
  # The `redis_options:` of #connect, with the keys redis-rb users know.
  # Explicit keys win over the parts of `url`; with neither host, path nor
  # url given, REDIS_URL from the environment is used, as redis-rb does.
  module RedisOptions
    KEYS = %i[host port path url username password db timeout connect_timeout].freeze
    # Redis allows as many databases as its `databases` setting; beyond
    # these, a value is a mistake (the engine checks the same bounds).
    MAX_DB = 65_535
    MAX_TIMEOUT = 60

    module_function

    # Returns a Hash for the engine: host, port, path, username, password, db,
    # timeout, connect_timeout.
    def normalize(options)
      raise ArgumentError, "redis_options must be a Hash, got #{options.class}" unless options.is_a?(Hash)

      options = options.transform_keys { |k| k.respond_to?(:to_sym) ? k.to_sym : k }
      unknown = options.keys - KEYS
      raise ArgumentError, "unknown redis_options: #{unknown.map(&:inspect).join(", ")} (known: #{KEYS.join(", ")})" if unknown.any?

      url = options[:url]
      url = ENV["REDIS_URL"] if url.nil? && options[:host].nil? && options[:path].nil? && !ENV["REDIS_URL"].to_s.empty?
      config = { host: "127.0.0.1", port: 6379, path: nil, username: nil, password: nil, db: 0, timeout: 1.0, connect_timeout: 1.0 }
      config.merge!(parse_url(url)) if url
      options.each { |key, value| config[key] = value unless key == :url || value.nil? }
      validate!(config)
    end

    def parse_url(url)
      raise ArgumentError, "redis_options url must be a String" unless url.is_a?(String)

      uri = URI.parse(url)
      query = URI.decode_www_form(uri.query.to_s).to_h
      case uri.scheme
      when "redis"
        out = {}
        out[:host] = uri.host.delete_prefix("[").delete_suffix("]") if uri.host && !uri.host.empty?
        out[:port] = uri.port if uri.port
        out[:db] = Integer(uri.path.delete_prefix("/"), 10) unless uri.path.to_s.delete_prefix("/").empty?
        add_credentials(out, uri)
        out[:db] = Integer(query["db"], 10) if query["db"]
        out
      when "unix"
        raise ArgumentError, "unix:// url needs a socket path" if uri.path.to_s.empty?

        out = { path: uri.path }
        add_credentials(out, uri)
        out[:db] = Integer(query["db"], 10) if query["db"]
        out
      when "rediss"
        raise ArgumentError, "rediss:// (TLS) is not supported: hiredis here is built without TLS"
      else
        raise ArgumentError, "redis_options url must start with redis:// or unix://, got #{url.inspect}"
      end
    rescue URI::InvalidURIError => e
      raise ArgumentError, "invalid redis url #{url.inspect}: #{e.message}"
    end

    def add_credentials(out, uri)
      out[:username] = URI.decode_www_form_component(uri.user) if uri.user && !uri.user.empty? && uri.password
      out[:password] = URI.decode_www_form_component(uri.password || uri.user) if uri.password || (uri.user && !uri.user.empty?)
    end

    def validate!(c)
      %i[host path username password].each do |key|
        next if c[key].nil?
        raise ArgumentError, "redis_options #{key} must be a String" unless c[key].is_a?(String)
        raise ArgumentError, "redis_options #{key} must not contain NUL bytes" if c[key].include?("\0")
      end
      raise ArgumentError, "redis_options host must not be empty" if c[:host].to_s.empty? && c[:path].nil?
      c[:port] = Integer(c[:port]) if c[:port].is_a?(String) && c[:port].match?(/\A\d+\z/)
      raise ArgumentError, "redis_options port must be an Integer from 1 to 65535" unless c[:port].is_a?(Integer) && c[:port].between?(1, 65_535)
      raise ArgumentError, "redis_options db must be an Integer from 0 to #{MAX_DB}" unless c[:db].is_a?(Integer) && c[:db].between?(0, MAX_DB)

      %i[timeout connect_timeout].each do |key|
        value = c[key]
        unless value.is_a?(Numeric) && value.real? && value.positive? && value.to_f.finite? && value <= MAX_TIMEOUT
          raise ArgumentError, "redis_options #{key} must be a positive number of seconds up to #{MAX_TIMEOUT}, got #{value.inspect}"
        end

        c[key] = value.to_f
      end
      c
    end
  end
end
