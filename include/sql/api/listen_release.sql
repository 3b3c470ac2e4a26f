-- The service's release watcher: swaps NOTIFY this channel (vehicle_etl/release/channel.py).
LISTEN mvp_platform_vehicles_release
