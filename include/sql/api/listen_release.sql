-- The service's release watcher: swaps NOTIFY this channel (vehicle_etl/serving/vpic_api/release_channel.py).
LISTEN mvp_platform_vehicles_release
