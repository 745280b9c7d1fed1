# frozen_string_literal: true

module RedisIPC
  # Payloads travel as JSON text (WIRE.md): every value is encoded, a String
  # too, so "42" stays a String; what arrives is parsed with symbol keys and
  # kept as the raw string when it is not JSON (1.x writes Strings raw).
  # @api private
  module Content
    # Nesting deeper than this is refused when encoding and parsing.
    MAX_DEPTH = 100

    module_function

    # The JSON text a value travels as.
    def encode(value)
      check!(value, 0)
      JSON.generate(value, max_nesting: false)
    rescue JSON::GeneratorError, EncodingError => e
      raise ArgumentError, "content cannot be written as JSON: #{e.message}"
    end

    # What JSON text stands for (symbol keys), or the text itself when it is not JSON.
    def decode(text)
      JSON.parse(text, symbolize_names: true, max_nesting: MAX_DEPTH)
    rescue JSON::ParserError, EncodingError
      text
    end

    def check!(value, depth)
      raise ArgumentError, "content nests deeper than #{MAX_DEPTH} levels" if depth > MAX_DEPTH

      case value
      when nil, true, false, Integer, Symbol
        nil
      when String
        raise ArgumentError, "content strings must be validly encoded" unless value.valid_encoding?
      when Float
        raise ArgumentError, "content cannot hold #{value} (not a JSON number)" unless value.finite?
      when Array
        value.each { |item| check!(item, depth + 1) }
      when Hash
        value.each do |key, item|
          raise ArgumentError, "content hash keys must be Strings or Symbols, got #{key.class}" unless key.is_a?(String) || key.is_a?(Symbol)

          check!(item, depth + 1)
        end
      else
        raise ArgumentError, "content must be JSON-compatible (nil, true, false, numbers, Strings, Symbols, Arrays, Hashes); got #{value.class}"
      end
    end
  end
end
