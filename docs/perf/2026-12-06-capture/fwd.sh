#!/bin/bash
# For each command: when mosquitto received it from the commander and when it sent it on to the bridge.
f=$1
tshark -r $f -d tcp.port==18883,mqtt -T fields -e frame.time_relative -e tcp.srcport -e tcp.dstport -e mqtt.topic -e mqtt.msg -Y 'mqtt.topic contains "/set"' 2>/dev/null | python3 -c '
import sys
recv={}; lat=[]
lines=[l.rstrip("\n").split("\t") for l in sys.stdin]
# commander port: the one sending to 18883 with /set topics
for t,sp,dp,topics,msgs in lines:
    for i,(tp,m) in enumerate(zip(topics.split(","),msgs.split(","))):
        if "/set" not in tp: continue
        key=(tp,m)
        if dp=="18883": recv.setdefault(key,[]).append(float(t))
        else:
            t0=recv[key].pop(0); lat.append((float(t)-t0)*1000)
lat.sort(); n=len(lat)
print("commands forwarded %d: p50 %.2f ms p90 %.2f p99 %.2f max %.2f; over 5 ms: %d" % (n, lat[n//2], lat[int(n*.9)], lat[min(n-1,int(n*.99))], lat[-1], sum(1 for x in lat if x>5)))
'
