# gunicorn settings for wsgisession apps:
#   gunicorn --paste conf/development.ini -c conf/gunicorn.conf.py
# The worker is gevent-websocket's gevent worker with TCP_NODELAY (plain
# `-k gevent` hands no websocket upgrade to the app (it answers them 400) once gevent-websocket is
# installed). Several workers need the Redis store (conf/counter-redis.ini), and
# the polling transport needs each client on one worker: behind conf/nginx.conf run
# one worker per master, one master per port (conf/production.ini says how).
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:6543")
workers = int(os.environ.get("GUNICORN_WORKERS", "1"))
worker_class = "wsgisession.server.Worker"
worker_connections = 10000
graceful_timeout = 10
timeout = 30
keepalive = 5
