// Package testpkt builds and describes raw network frames for BPF packet
// tests.
//
// Every builder writes its header field by field, in wire order, with the
// RFC layout spelled out next to the code, so that a reader can check it
// against the RFC without knowing anything else about the package. Builders
// never guess: fields are written exactly as given (a zero TTL is written as
// 0), except for the few length and checksum fields documented as
// "computed". Builders panic on arguments that cannot be encoded (for
// example an IPv6 source address in an IPv4 header): they are test helpers,
// and a panic points at the broken test.
//
// Layers are composed by nesting, innermost first:
//
//	udp := testpkt.UDP{SrcPort: 31337, DstPort: 80}.Datagram(src, dst, payload)
//	ip := testpkt.IPv4{ID: 1, TTL: 64, Proto: testpkt.ProtoUDP, Src: src, Dst: dst}.Packet(udp)
//	frame := testpkt.Eth{Dst: dstMAC, Src: srcMAC, Type: testpkt.EtherTypeIPv4}.Frame(ip)
//
// Describe and Diff decode frames into one readable line. They exist to make
// test failures readable and must not be used for assertions: compare bytes.
package testpkt
