func.func @h(%x: vector<8xf16>) -> vector<8xf16> {
  %y = math.exp %x : vector<8xf16>
  return %y : vector<8xf16>
}
