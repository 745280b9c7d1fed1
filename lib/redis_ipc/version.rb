# frozen_string_literal: true

module RedisIPC
  VERSION = "0.1.0"
end
