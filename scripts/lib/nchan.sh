# The nginx + Nchan instance the benchmarks compare Chorus with (scripts/bench.sh,
# scripts/bench-crosscheck.sh): one definition, so that every script measures the same Nchan.

# nchan_conf DIR HOST PORT REDIS_PORT WORKERS STORAGE_MODE DEFLATE: prints the nginx.conf of one
# instance: WORKERS worker processes, Nchan on the Redis at 127.0.0.1:REDIS_PORT with
# nchan_redis_storage_mode STORAGE_MODE (nostore: pure pub/sub, like Chorus with HISTORY_SIZE=0;
# distributed: messages kept in Redis, like Chorus's default history), publishers on
# /pub/<channel> (HTTP POST or WebSocket, nchan_deflate_message_for_websocket DEFLATE),
# WebSocket subscribers on /sub/<channel>, /health; temp files and logs under DIR.
nchan_conf() {
    local dir="$1" host="$2" port="$3" redis_port="$4" workers="$5" mode="$6" deflate="$7"
    [ "$(id -u)" = 0 ] && echo "user $(id -un) $(id -gn);"
    cat <<EOF
load_module /usr/lib/nginx/modules/ngx_nchan_module.so;
worker_processes $workers;
worker_rlimit_nofile $(ulimit -Hn);
pid $dir/nginx.pid;
error_log $dir/error.log warn;
daemon off;
events {
    worker_connections $(( $(ulimit -Hn) - 200 ));
}
http {
    access_log off;
    client_body_temp_path $dir/tmp/client_body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    upstream nchan_redis {
        nchan_redis_server redis://127.0.0.1:$redis_port;
        nchan_redis_storage_mode $mode;
    }
    server {
        listen $host:$port backlog=4096;
        location = /health { return 200 "ok\n"; }
        location ~ ^/pub/([A-Za-z0-9._-]+)$ {
            nchan_publisher http websocket;
            nchan_deflate_message_for_websocket $deflate;
            nchan_channel_id \$1;
            nchan_redis_pass nchan_redis;
        }
        location ~ ^/sub/([A-Za-z0-9._-]+)$ {
            nchan_subscriber websocket;
            nchan_channel_id \$1;
            nchan_redis_pass nchan_redis;
        }
    }
}
EOF
}
