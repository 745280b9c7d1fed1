# frozen_string_literal: true

require "uri"
require_relative "topology_options"

module RedisIPC
  # The `redis_options:` of #connect, with the keys redis-rb users know.
  # Explicit keys win over the parts of `url`; with neither host, path nor
  # url given, REDIS_URL from the environment is used, as redis-rb does.
  # TLS: `url: "rediss://..."` or `ssl: true`, with `ssl_params:` (files are
  # paths to PEM files; the server is verified unless verify_mode is 0,
  # OpenSSL::SSL::VERIFY_NONE).
  # @api private
  module RedisOptions
    # The keys redis_options: accepts.
    KEYS = (%i[host port path url username password db timeout connect_timeout ssl ssl_params] + Topology::KEYS).freeze
    # The keys ssl_params: accepts.
    SSL_PARAMS = %i[ca_file ca_path cert key verify_mode sni].freeze
    VERIFY_NONE = 0 # OpenSSL::SSL::VERIFY_NONE, without loading openssl
    VERIFY_PEER = 1 # OpenSSL::SSL::VERIFY_PEER
    # Redis allows as many databases as its `databases` setting; beyond
    # these, a value is a mistake (the engine checks the same bounds).
    MAX_DB = 65_535
    # The largest timeout and connect_timeout, in seconds.
    MAX_TIMEOUT = 60

    module_function

    # Returns a Hash for the engine: host, port, path, username, password, db,
    # timeout, connect_timeout, tls and the tls_* settings.
    def normalize(options)
      raise ArgumentError, "redis_options must be a Hash, got #{options.class}" unless options.is_a?(Hash)

      options = options.transform_keys { |k| k.respond_to?(:to_sym) ? k.to_sym : k }
      unknown = options.keys - KEYS
      raise ArgumentError, "unknown redis_options: #{unknown.map(&:inspect).join(", ")} (known: #{KEYS.join(", ")})" if unknown.any?

      url = options[:url]
      # Sentinels and cluster nodes say where the primary is: REDIS_URL does not apply.
      from_env = url.nil? && options[:host].nil? && options[:path].nil? && options[:sentinels].nil? && options[:nodes].nil?
      url = ENV["REDIS_URL"] if from_env && !ENV["REDIS_URL"].to_s.empty?
      config = { host: "127.0.0.1", port: 6379, path: nil, username: nil, password: nil, db: 0, timeout: 1.0, connect_timeout: 1.0,
                 ssl: false, ssl_params: nil }
      config.merge!(parse_url(url)) if url
      options.each { |key, value| config[key] = value unless key == :url || Topology::KEYS.include?(key) || value.nil? }
      Topology.apply(options, config)
      tls(validate!(config))
    end

    # ssl and ssl_params become the engine's tls settings.
    def tls(config)
      ssl = config.delete(:ssl)
      params = config.delete(:ssl_params) || {}
      raise ArgumentError, "redis_options ssl must be true or false, got #{ssl.inspect}" unless [true, false].include?(ssl)
      raise ArgumentError, "redis_options ssl_params must be a Hash, got #{params.class}" unless params.is_a?(Hash)

      params = params.transform_keys { |k| k.respond_to?(:to_sym) ? k.to_sym : k }
      unknown = params.keys - SSL_PARAMS
      raise ArgumentError, "unknown redis_options ssl_params: #{unknown.map(&:inspect).join(", ")} (known: #{SSL_PARAMS.join(", ")})" if unknown.any?
      raise ArgumentError, "redis_options ssl needs host and port: TLS does not apply to a unix socket (path)" if ssl && config[:path]

      config[:tls] = ssl
      { ca_file: :tls_ca_file, ca_path: :tls_ca_path, cert: :tls_cert, key: :tls_key, sni: :tls_sni }.each do |from, to|
        config[to] = file_param(params[from], from)
      end
      verify = params.fetch(:verify_mode, VERIFY_PEER)
      verify = { none: VERIFY_NONE, peer: VERIFY_PEER }.fetch(verify, verify)
      unless [VERIFY_NONE, VERIFY_PEER].include?(verify)
        raise ArgumentError, "redis_options ssl_params verify_mode must be OpenSSL::SSL::VERIFY_PEER or VERIFY_NONE (or :peer, :none), got #{verify.inspect}"
      end

      config[:tls_skip_verify] = verify == VERIFY_NONE
      config
    end

    # A TLS file's path, checked to be a String.
    def file_param(value, name)
      return nil if value.nil?

      value = value.to_path if value.respond_to?(:to_path)
      unless value.is_a?(String) && !value.empty? && !value.include?("\0")
        raise ArgumentError, "redis_options ssl_params #{name} must be a path (String), got #{value.class}"
      end

      value
    end

    # The parts of a redis://, rediss:// or unix:// URL.
    def parse_url(url)
      raise ArgumentError, "redis_options url must be a String" unless url.is_a?(String)

      uri = URI.parse(url)
      query = decoded(url) { URI.decode_www_form(uri.query.to_s).to_h }
      case uri.scheme
      when "redis", "rediss"
        out = { ssl: uri.scheme == "rediss" }
        out[:host] = uri.host.delete_prefix("[").delete_suffix("]") if uri.host && !uri.host.empty?
        out[:port] = uri.port if uri.port
        out[:db] = url_db(uri.path.delete_prefix("/"), url) unless uri.path.to_s.delete_prefix("/").empty?
      when "unix"
        raise ArgumentError, "unix:// url needs a socket path" if uri.path.to_s.empty?

        out = { path: uri.path }
      else
        raise ArgumentError, "redis_options url must start with redis://, rediss:// or unix://, got #{redact(url).inspect}"
      end
      decoded(url) { add_credentials(out, uri) }
      out[:db] = url_db(query["db"], url) if query["db"]
      out
    rescue URI::InvalidURIError, URI::InvalidComponentError
      raise ArgumentError, "invalid redis url #{redact(url).inspect}", cause: nil
    end

    # URI's messages quote the url, or the part that failed to decode, with
    # its password: ours show the url redacted, and drop URI's error as
    # their cause (full_message would print it).
    def decoded(url)
      yield
    rescue ArgumentError
      raise ArgumentError, "invalid redis url #{redact(url).inspect}: bad %-escape", cause: nil
    end

    def url_db(text, url)
      return Integer(text, 10) if text.match?(/\A\d+\z/)

      raise ArgumentError, "redis_options url db must be a number, got #{text.inspect} in #{redact(url).inspect}"
    end

    # What stands for a password in a URL that is shown.
    REDACTED = "REDACTED"

    # The url as it may be shown: whatever stands between "scheme://" and
    # the last "@" (the user info) keeps only its user name. The last "@",
    # as a password may hold an unescaped one; the url need not parse.
    def redact(url)
      text = url.to_s
      at = text.rindex("@")
      return text unless at

      start = text.index("://")
      start = start && start < at ? start + 3 : 0
      user, colon, = text[start...at].partition(":")
      "#{text[0...start]}#{colon.empty? ? "" : "#{user}:"}#{REDACTED}#{text[at..]}"
    end

    # The URL's user and password, unescaped, into out.
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
