#!/bin/bash
# Captures the bridge's port on loopback while cmds.py sends N commands 20 ms apart:
#   run.sh BRIDGE-BINARY TAG [N]   ->  TAG.pcap, ss-TAG.txt (broker side), ssb-TAG.txt (bridge side)
# then fwd.sh TAG.pcap and acks.sh TAG.pcap summarise it. Needs mosquitto, tcpdump, tshark, python3.
cd "$(dirname "$0")"
/usr/sbin/mosquitto -c mosq.conf > mosq.log 2>&1 & MP=$!
tcpdump -i lo -s 200 -w $2.pcap 'tcp port 18883' > tcpdump.log 2>&1 & TP=$!
sleep 0.5
rm -f /dev/shm/relays.json
$1 run -c bridge.yaml > bridge-$2.log 2>&1 & BP=$!
sleep 0.3
python3 cmds.py 18883 ${3:-40} 0.02 &
CP=$!
sleep 2.2; ss -tni "dport = :18883" > ssb-$2.txt
ss -tni 'sport = :18883' > ss-$2.txt
wait $CP
ss -tni 'sport = :18883' >> ss-$2.txt
kill $BP; sleep 0.3; kill $TP $MP; wait
